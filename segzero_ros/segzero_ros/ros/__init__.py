"""Everything that imports rclpy: the two nodes (``node``, ``depth_node``), the clients (``client``), their building
blocks (publishers, QoS, parameters, diagnostics, the process, recordings). The core never imports them."""
