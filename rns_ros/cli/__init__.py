"""Every console script of the package, one module each: argument parsing, the process's signals
and exit codes, then one call into the library. The work itself lives in the rooms below.

    rns-segment              segment.py              images -> label PNGs and overlays (rns_ros.core)
    rns-bench                bench.py                per-stage timings of the pipeline (rns_ros.core)
    rns-eval                 eval.py                 the paper's evaluation protocol (rns_ros.eval)
    rns_node                 node.py                 the `rns` ROS 2 node (rns_ros.ros.node)
    rns-bag                  bag.py                  a rosbag2 recording segmented into a new bag (rns_ros.ros.bags)
    rns-demo                 demo.py                 camera + node + recorder, out of the box (rns_ros.ros.demo)
    rns_image_folder_camera  image_folder_camera.py  an image folder as a camera (rns_ros.ros.demo)
    rns_console              console.py              the teaching console's web page (rns_ros.console)

Registered in pyproject.toml ([project.scripts]) for pip and in CMakeLists.txt for `ros2 run`.
Nothing here runs at import time.
"""
