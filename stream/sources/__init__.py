"""Video sources: `factory.open_source(cfg, stream_id)` turns a URI into a `base.FrameSource`.

pyav_source (files, RTSP/HTTP/TCP streams), webcam (V4L2 via OpenCV), images (folder of images),
synthetic (deterministic test pattern). Kept import-light: heavy libraries load in the module
that needs them, inside the source process.
"""
