"""Run by a Python that has bpy (Blender as a module): import a BVH with Blender's own importer and
print the world head positions of named bones at given frames (JSON after "RESULT")."""
import json, sys
import bpy
path, frames, names = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_anim.bvh(filepath=path, axis_forward="-Z", axis_up="Y", global_scale=1.0,
                        rotate_mode="NATIVE", use_fps_scale=False, update_scene_fps=False,
                        update_scene_duration=True)
arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
out = {}
for f in frames:
    bpy.context.scene.frame_set(f + 1)   # the importer starts at frame 1
    out[f] = {n: list(arm.matrix_world @ arm.pose.bones[n].head) for n in names}
print("RESULT" + json.dumps(out))
