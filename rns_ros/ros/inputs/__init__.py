"""Where frames enter the node: each camera's subscription (raw sensor_msgs/Image or, with
`image_transport: compressed`, sensor_msgs/CompressedImage), its decoding to RGB, the one-slot
mailbox per camera that the worker takes frames from, and how several cameras' frames are batched.

    cameras.py    Camera (input subscription, outputs, statistics, newest frame), decode_frame, clicks
    compressed.py sensor_msgs/CompressedImage (JPEG, PNG) -> RGB (the node and rns-bag)
    mailboxes.py  CameraMailboxes: newest frame per camera, served fairly
    batching.py   frames to the engine one at a time, or several cameras' as one batch
    qos.py        the subscriptions' QoS and image_transport topic names

Contract: nothing here blocks a subscription callback; decoding happens in the worker thread and
a frame that cannot be decoded raises FrameError with the reason (the caller counts it).
"""
