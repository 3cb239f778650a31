"""What people look at: class colours, the overlay with its legend, the colourised label image.

ROS-free (numpy and Pillow only), so the node (rns_ros.ros), the offline CLI `rns-segment`
(rns_ros.cli.segment) and `rns-demo` draw the same pictures with the same colours:

palette.py   Palette (class id -> RGB), the built-in palettes, parse_palette for the `palette` setting
legend.py    the legend: a swatch and a name per class present, placed in the corner that hides least
fonts.py     the legend's font: DejaVu Sans (Latin, Greek, Cyrillic) where found, visible fallback
overlay.py   blend / colorize / contours, and render_overlay (everything the overlay shows)

All colours are RGB triples in R, G, B order, 0..255; id 0 (unlabeled) is black.
"""
from rns_ros.visual.legend import LegendStyle
from rns_ros.visual.overlay import OverlayStyle, blend, color_lut, colorize, render_overlay
from rns_ros.visual.palette import BUILT_IN, DEFAULT_PALETTE, Palette, parse_palette, to_hex

__all__ = ["BUILT_IN", "DEFAULT_PALETTE", "LegendStyle", "OverlayStyle", "Palette", "blend", "color_lut",
           "colorize", "parse_palette", "render_overlay", "to_hex"]
