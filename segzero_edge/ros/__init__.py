"""ROS 2 interoperability without a ROS install: image messages (``messages``), bags in and out (``bag``)
and a node on the ROS 2 DDS wire (``wire``, ``node``). Extra ``ros``."""
