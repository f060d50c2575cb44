"""ConvScope engine: see what an image CNN does, as a service.

The engine is pure PyTorch: it imports neither TorchServe nor any transport, so every part of
it runs in-process, on the CPU, in tests. Handlers in ``handlers/`` adapt it to TorchServe.
"""

__version__ = "0.1.0"
