"""The ROS 2 glue around the engine (docs/ros.md). Nothing here runs at import time.

node.py                 the `rns` lifecycle node (lifecycle + frame loop) and `rns_node`
params.py               the parameter table (ROS names -> config fields, validation)
engine.py               EngineConfig, the device policy, build_engine (the one place touching core)
inputs.py               the camera subscription's QoS
cameras.py              each camera's input (raw or compressed), outputs, statistics, clicks
compressed.py           sensor_msgs/CompressedImage (JPEG, PNG) -> RGB (the node and rns-bag)
compressed_depth.py     image_transport's compressedDepth CompressedImage -> depth in metres
outputs.py              the publishers: labels, confidence, overlay, labels_color (per camera),
                        latched class map and vision_msgs label info (label_info.py); the pictures
                        are drawn by rns_ros.visual, ROS-free: palettes, legend
diagnostics.py          the /diagnostics status
conversions.py          sensor_msgs/Image <-> numpy (step and endianness aware, no cv_bridge)
camera_mailboxes.py     newest frame per camera, served fairly (one slot per camera)
batching.py             frames to the engine one at a time, or several cameras' as one batch
stats.py                counters, rates and latency windows (per camera and node totals)
interfaces.py           ClassMap / ClassInfo builders
services.py             wiring of the teaching services and ~/click onto the node
teaching.py             the teaching handlers (docs/teaching.md); their request checks in
                        teaching_requests.py, SAM 2 prompts in prompting.py, autosave and restore
                        in memory_store.py; teach_by_click.py turns clicks into requests
depth.py, pointcloud.py depth images -> labelled points (pinhole, numpy); PointCloud2 packing
pairing.py              colour/depth pairing by stamp (live ring, ordered for recordings)
depth_input.py          the optional depth input and ~/points (one per camera; frame hook)
bag.py, bag_run.py      `rns-bag`: every frame of a rosbag2 recording segmented into a new bag
bag_io.py               rosbag2 in and out through `rosbags` (temporary name, renamed when closed)
image_folder_camera.py  `rns_image_folder_camera`: an image folder as a camera
bag_camera.py           a recorded image topic as a camera (`rns-demo --bag`)
demo.py                 `rns-demo`: camera + node + recorder, throughput and latency
spinning.py             executor spin/stop helpers (safe shutdown order)
"""
