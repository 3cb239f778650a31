"""Where results leave the node: the per-frame images of each camera, the latched class map and
vision_msgs label info that say what the label ids mean, and /diagnostics.

    frames.py       ~/labels, ~/confidence, ~/overlay, ~/labels_color (per camera); frame_images
    class_map.py    ~/class_map (rns_ros/ClassMap) and ~/label_info, republished on every change
    label_info.py   vision_msgs/LabelInfo of the class map (what Nav2's semantic layer reads)
    diagnostics.py  /diagnostics: node, engine and per-camera statuses

Contract: publishers are lifecycle publishers (they carry messages only while the node is active);
a frame's outputs carry the input frame's header; pictures nobody subscribes to are not drawn.
"""
