"""What the network learned: its layers, their receptive fields, feature maps and filters."""
