"""Labels in 3D: an aligned depth camera's images paired with the colour frames by stamp, and the
labelled point cloud ~/points built from them (depth.enabled).

    projection.py  DepthConfig, pinhole intrinsics, depth images -> metres -> labelled points (numpy)
    compressed.py  image_transport's compressedDepth CompressedImage -> depth in metres
    pairing.py     colour/depth pairing by stamp (live ring; ordered for recordings)
    pointcloud.py  PointCloud2 packing (x, y, z, rgb, label, confidence)
    output.py      DepthInput (pairs and counts) and DepthOutput (its subscriptions and ~/points)

Contract: labels never wait for depth; a colour frame without a usable depth partner is counted
under its reason and gives no cloud.
"""
