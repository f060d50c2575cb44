"""TorchServe adapter for every ConvScope endpoint.

One archive per backbone is registered under one name per endpoint (``<m>``, ``<m>-features``,
...); ``context.model_name`` says which endpoint this worker serves. The adapter turns
TorchServe rows into ``Payload``s, calls the engine, and gives each item of the batch its own
status: a bad item answers 4xx alone and its batch-mates answer 200.
"""

import json
import os
from pathlib import Path

import torch

from convscope.config import EngineConfig
from convscope.endpoints import EXPLANATION_ENDPOINTS, build_endpoint, endpoint_for
from convscope.envelope import Payload
from convscope.errors import ServiceError
from convscope.index import model_directory, open_model_index
from convscope.index.activations import STORE_FILE
from convscope.inspect.examples import SEED_FILE as ACTIVATIONS_SEED
from convscope.inspect.examples import open_model_store
from convscope.models import choose_device, load_model
from convscope.spec import load_spec


class ConvScopeHandler:
    def __init__(self):
        self.endpoint = None

    def initialize(self, context):
        props = context.system_properties
        config = EngineConfig.from_mapping((context.model_yaml_config or {}).get("convscope"))
        torch.set_num_threads(config.intra_op_threads)
        spec = load_spec(Path(props["model_dir"]) / "spec.json", confine=True)  # only the archive's own files
        model = load_model(spec, choose_device(props.get("gpu_id")), config.intra_op_threads)
        endpoint = endpoint_for(context.model_name, spec.name)
        if endpoint in EXPLANATION_ENDPOINTS:  # explanations yield the CPU to the fast endpoints
            os.nice(config.explanation_niceness)
        index = store = store_path = None
        if endpoint == "neighbours":  # the single writer of this model's index and activation store
            index = open_model_index(spec, model.layers.feature_dim, Path(props["model_dir"]),
                                     os.environ, config.intra_op_threads)
            store = open_model_store(model, model_directory(spec, os.environ), index,
                                     seed=Path(props["model_dir"]) / ACTIVATIONS_SEED)
        if endpoint == "inspect":  # reads the store the neighbours worker writes
            store_path = model_directory(spec, os.environ) / STORE_FILE
        self.endpoint = build_endpoint(endpoint, model, config, index, store, store_path)

    @staticmethod
    def _payload(row, context, index):
        properties = context.request_processor[index].get_request_properties()
        types = {name: (properties.get(name) or {}).get("content-type", "")
                 for name in row if isinstance(properties.get(name), dict)}
        return Payload(fields=row, content_types=types,
                       request_content_type=str(properties.get("Content-Type") or ""))

    def handle(self, data, context):
        payloads = [self._payload(row, context, i) for i, row in enumerate(data)]
        responses = []
        for index, outcome in enumerate(self.endpoint.handle(payloads)):
            context.set_response_content_type(index, "application/json")
            if isinstance(outcome, ServiceError):
                context.set_response_status(outcome.status, outcome.type, index)
            responses.append(json.dumps(outcome.to_dict()))
        return responses
