"""rns_ros: Retrieve-and-Segment open-vocabulary segmentation for ROS 2.

`rns_ros.core` is the engine (torch only, no ROS), `rns_ros.ros` the node, `rns_ros.eval` the
evaluation harness, `rns_ros.console` the teaching console, `rns_ros.cli` every console script's
main, `rns_ros.visual` what people look at (docs/architecture.md has the whole tree). The ROS
interfaces `rns_ros.msg` / `rns_ros.srv` are generated at build time and exist only in the
installed package.
"""
import pkgutil

# When the source tree shadows the installed package (tests run from a checkout), let the
# generated `msg`/`srv` subpackages be found in the installed copy too.
__path__ = pkgutil.extend_path(__path__, __name__)

__version__ = "0.1.0"
