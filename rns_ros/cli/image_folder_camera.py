"""`rns_image_folder_camera`: an image folder as a camera (rns_ros/ros/demo/image_folder_camera.py).

    rns_image_folder_camera --ros-args -p folder:=/data/frames -p rate_hz:=5.0 -r image:=/camera/image_raw
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.utilities import remove_ros_args

from rns_ros.ros.demo.image_folder_camera import PARAMETER_HELP, CameraConfig, ImageFolderCamera


def parse_command_line(argv: list[str]) -> None:
    """--help prints the usage and exits; anything but ROS arguments is refused (exit 2)."""
    parameters = "\n".join(f"  {f.name:<14} {PARAMETER_HELP[f.name]} [default: {f.default!r}]"
                           for f in fields(CameraConfig))
    parser = argparse.ArgumentParser(
        prog="rns_image_folder_camera", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Publish the images of a folder as sensor_msgs/Image on `image`, at a fixed rate.",
        epilog=f"ROS parameters (--ros-args -p name:=value):\n{parameters}\n\nexample:\n"
               "  rns_image_folder_camera --ros-args -p folder:=/data/frames -p rate_hz:=5.0 "
               "-r image:=/camera/image_raw")
    parser.parse_args(remove_ros_args(argv)[1:])


def main(args: list[str] | None = None) -> int:
    """Console script `rns_image_folder_camera`."""
    argv = args if args is not None else sys.argv
    parse_command_line(argv)  # before rclpy: `--help` must not start publishing
    rclpy.init(args=argv)
    node = None
    executor = SingleThreadedExecutor()
    code = 0
    try:
        node = ImageFolderCamera()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, FileNotFoundError) as exc:
        print(f"rns_image_folder_camera: {exc}", file=sys.stderr)
        code = 2
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
