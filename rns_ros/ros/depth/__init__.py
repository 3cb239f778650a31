"""Labels in 3D: an aligned depth camera's images paired with the colour frames by stamp, the
labelled point cloud ~/points built from them (depth.enabled), and the same frame's labels,
confidence and organised cloud on the depth grid (depth.aligned_outputs, for Nav2's semantic layer).

    projection.py  DepthConfig, pinhole intrinsics, depth images -> metres -> labelled points (numpy)
    compressed.py  image_transport's compressedDepth CompressedImage -> depth in metres
    pairing.py     colour/depth pairing by stamp (live ring; ordered for recordings)
    pointcloud.py  PointCloud2 packing (x, y, z, rgb, label, confidence), unorganised or organised
    aligned.py     ~/aligned/labels, confidence, points: one frame on the depth grid
    output.py      DepthInput (pairs, decodes, counts) and DepthOutput (its subscriptions, ~/points,
                   the aligned outputs)

Contract: labels never wait for depth; a colour frame without a usable depth partner is counted
under its reason and gives no depth output.
"""
