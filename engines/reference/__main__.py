"""CLI: build the multi-camera reference from videos and a calibration, print its quality."""
from __future__ import annotations

import argparse
import sys

import numpy as np

from stream.errors import UserError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engines.reference", description=__doc__)
    ap.add_argument("videos", nargs="+", help="one video per calibrated camera, in calibration order")
    ap.add_argument("--calibration", required=True, help="Qualisys .qca.txt or Pose2Sim/anipose .toml")
    ap.add_argument("--out", help="write the reference (.npz)")
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--people", type=int, default=1, help="people to reconstruct (each seen in every view)")
    args = ap.parse_args(argv)
    from engines.reference.pipeline import reference_from_files

    try:
        refs = reference_from_files(args.videos, args.calibration, args.max_frames, people=args.people)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for i, ref in enumerate(refs):
        report(ref, f"{args.out.removesuffix('.npz')}_p{i}.npz" if args.out and len(refs) > 1 else args.out)
    return 0


def report(ref, out: str | None) -> None:
    print(f"time offsets (frames, view v's frame t+o_v = reference frame t): {ref.offsets.tolist()}")
    print(f"left/right slips repaired: {int(ref.swapped.sum())} view-frames "
          f"({', '.join(str(int(n)) for n in ref.swapped.sum(0))} per view)")
    err = ref.reprojection_by_joint_px()
    print("reprojection error per joint (px): " + ", ".join(f"{k} {v:.1f}" for k, v in err.items()
                                                           if np.isfinite(v)))
    for k, v in ref.geometric.items():
        print(f"{k}: mean {np.degrees(np.nanmean(v)):.1f} deg, range {np.degrees(np.nanmin(v)):.1f}.."
              f"{np.degrees(np.nanmax(v)):.1f}")
    if out:
        ref.save(out)
        print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
