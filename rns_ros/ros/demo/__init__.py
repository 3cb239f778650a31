"""What `rns-demo` and the launch file's RViz view need around the node: an image-folder camera
with the package's sample images, the recorder of the node's outputs, and the RViz config writer.

    image_folder_camera.py  ImageFolderCamera: an image folder published as a camera
    recorder.py             Recorder: label/overlay PNGs, class map, latency of what a node publishes
    rviz_config.py          rviz/rns.rviz with the topics of a namespace and camera
    sample_images/          the demo's photos
"""
