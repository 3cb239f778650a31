"""The ROS 2 glue around the engine (docs/ros.md). Nothing here runs at import time.

node.py                 the `rns` lifecycle node and the `rns_node` console script
params.py               the parameter table (ROS names -> config fields, validation)
engine.py               EngineConfig, the device policy, build_engine (the one place touching core)
conversions.py          sensor_msgs/Image <-> numpy (step and endianness aware, no cv_bridge)
mailbox.py, stats.py    the one-slot frame mailbox; counters, rates and latency windows
interfaces.py           ClassMap / ClassInfo / DiagnosticStatus builders
visualization.py        class colours and the overlay
teaching.py, teach_by_click.py   the teaching services (docs/teaching.md)
image_folder_camera.py  `rns_image_folder_camera`: an image folder as a camera
demo.py                 `rns-demo`: camera + node + recorder, throughput and latency
spinning.py             executor spin/stop helpers (safe shutdown order)
"""
