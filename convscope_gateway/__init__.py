"""ConvScope's gRPC gateway: the typed ``convscope.v1`` API and the Open Inference Protocol v2
(gRPC and REST), served over TorchServe's own inference gRPC.

A thin asyncio process beside TorchServe (``make serve`` starts it on 127.0.0.1:50051 and, for
OIP REST, 127.0.0.1:8090). It holds no model: each RPC becomes one TorchServe ``Predictions``
call to the registration of that endpoint (``<m>``, ``<m>-cam``, ...), with the caller's bearer
token passed through and the caller's deadline as the upstream timeout; the answer is
converted to typed messages and every error to one gRPC status. The engine (``convscope``)
knows nothing of it: this package is the only one that imports grpc.
"""

__version__ = "0.1.0"
