"""Static security checks over the repository (issue 8, item 5): no unsafe deserialisation,
no code evaluation, no shell, and a TorchServe config that keeps its hardening.

The checks read the syntax tree of every tracked Python file (``git ls-files``), so a call split
over lines or written with an alias is still seen; each rule is first shown to catch an offence.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from convscope.serving import BASE_CONFIG, free_ports, render_config

REPO = Path(__file__).resolve().parents[2]
STORE = REPO / "model_store"
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _name(node: ast.AST) -> str:
    """The dotted name a call resolves to: ``torch.load`` for a call of torch's load, ``eval`` for eval."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _name(node.value)
        return f"{inner or '()'}.{node.attr}"  # (...).eval() is a method, never the builtin
    return ""


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def offences(source: str) -> list[str]:
    """What in ``source`` breaks a rule, as ``line: rule`` strings."""
    found, tree = [], ast.parse(source)
    aliases = {}  # import torch as t -> t: torch; from pickle import loads -> loads: pickle.loads
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({a.asname or a.name: a.name for a in node.names})
        elif isinstance(node, ast.ImportFrom) and node.module:
            aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        head, _, rest = _name(node.func).partition(".")
        name = ".".join(filter(None, (aliases.get(head, head), rest)))
        last = name.rsplit(".", 1)[-1]
        rule = None
        if name == "torch.load":
            if not _is_true(_keyword(node, "weights_only")):
                rule = "torch.load without weights_only=True"
        elif name in ("yaml.load", "yaml.load_all"):
            loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if _name(loader).rsplit(".", 1)[-1] not in SAFE_YAML_LOADERS:
                rule = f"{name} without SafeLoader"
        elif name in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"):
            rule = name
        elif name.split(".")[0] in ("pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib") \
                and last in ("load", "loads", "open", "Unpickler"):
            rule = f"{name}: unpickling"
        elif last == "Unpickler":
            rule = f"{name}: unpickling"
        elif name.endswith(("numpy.load", "np.load")) and _is_true(_keyword(node, "allow_pickle")):
            rule = "numpy.load with allow_pickle=True"
        elif name in ("torch.jit.load", "torch.package.PackageImporter"):
            rule = f"{name}: runs code from a file"
        elif name in ("eval", "exec", "builtins.eval", "builtins.exec", "compile"):
            rule = f"{name}()"
        elif name in ("os.system", "os.popen") or name.startswith("os.exec") or name.startswith("os.spawn"):
            rule = f"{name}: a shell or a new program"
        elif _is_true(_keyword(node, "shell")):
            rule = f"{name}(shell=True)"
        if rule:
            found.append(f"{node.lineno}: {rule}")
    return found


LOAD = "torch." + "load"  # spelled apart, so a plain grep of the repository does not flag these examples

BAD = {
    "torch.load": f"import torch\n{LOAD}('w.pt')\n",
    "torch.load False": f"import torch\n{LOAD}('w.pt', weights_only=False)\n",
    "torch.load split": f"import torch\n{LOAD}(\n    'w.pt',\n    map_location='cpu',\n)\n",
    "yaml.load": "import yaml\nyaml.load(text)\n",
    "yaml.load Loader": "import yaml\nyaml.load(text, Loader=yaml.Loader)\n",
    "yaml.unsafe_load": "import yaml\nyaml.unsafe_load(text)\n",
    "pickle.load": "import pickle\npickle.load(f)\n",
    "pickle.loads": "import pickle\npickle.loads(b)\n",
    "Unpickler": "import pickle\npickle.Unpickler(f).load()\n",
    "np.load pickle": "import numpy as np\nnp.load('a.npy', allow_pickle=True)\n",
    "eval": "eval(request['expr'])\n",
    "exec": "exec(body)\n",
    "shell": "import subprocess\nsubprocess.run(command, shell=True)\n",
    "check_output shell": "import subprocess\nsubprocess.check_output('ls', shell=True)\n",
    "os.system": "import os\nos.system('touch x')\n",
    "torch.load via module alias": "import torch as t\nt.load('w.pt')\n",
    "from pickle import loads": "from pickle import loads as l\nl(b)\n",
    "from torch import load": "from torch import load\nload('w.pt')\n",
}
GOOD = {
    "torch.load": "import torch\ntorch.load('w.pt', map_location='cpu', weights_only=True)\n",
    "yaml.safe_load": "import yaml\nyaml.safe_load(text)\n",
    "yaml.load SafeLoader": "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)\n",
    "subprocess list": "import subprocess\nsubprocess.run(['ls'], check=True)\n",
    "os.system as a value": "import os\nclass P:\n    def __reduce__(self):\n        return (os.system, ('x',))\n",
    "json": "import json\njson.loads(body)\n",
    "module.eval()": "model = build().to('cpu').eval()\nmodel.eval()\n",
}


@pytest.mark.parametrize("label", BAD)
def test_each_rule_catches_its_offence(label):
    assert offences(BAD[label]), f"{label!r} was not caught"


@pytest.mark.parametrize("label", GOOD)
def test_safe_code_passes(label):
    assert offences(GOOD[label]) == []


def _python_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "*.py"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    return [REPO / name for name in listed if name and (REPO / name).exists()]


def test_no_unsafe_call_in_the_repository():
    files = _python_files()
    assert len(files) > 50 and REPO / "convscope" / "models" / "weights.py" in files
    found = [f"{path.relative_to(REPO)}:{offence}" for path in files
             for offence in offences(path.read_text())]
    assert found == []


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


HARDENED = {"disable_token_authorization": "false", "enable_model_api": "false",
            "install_py_dep_per_model": "false", "enable_envvars_config": "false",
            "grpc_inference_address": "127.0.0.1", "grpc_management_address": "127.0.0.1"}
LOOPBACK_URLS = ("inference_address", "management_address", "metrics_address")


def _check_hardened(config: dict[str, str]) -> list[str]:
    wrong = [f"{k}={config.get(k)}" for k, v in HARDENED.items() if config.get(k) != v]
    wrong += [f"{k}={config.get(k)}" for k in LOOPBACK_URLS
              if not re.fullmatch(r"https?://127\.0\.0\.1:\d+", config.get(k, ""))]
    allowed = config.get("allowed_urls", "")
    for url in ("http://127.0.0.1:9/evil.mar", "https://example.com/m.mar", "file:///etc/passwd",
                "s3://bucket/m.mar", f"file://{STORE}/digits.mar"):
        if any(re.fullmatch(p, url) for p in allowed.split(",")):
            wrong.append(f"allowed_urls={allowed} lets {url} through")
    return wrong


def test_the_base_config_is_hardened():
    assert _check_hardened(_properties(BASE_CONFIG.read_text())) == []


@pytest.mark.parametrize("key, value", [("disable_token_authorization", "true"), ("enable_model_api", "true"),
                                        ("inference_address", "http://0.0.0.0:8080"),
                                        ("grpc_management_address", "0.0.0.0"),
                                        ("allowed_urls", "file://.*|http(s)?://.*")])
def test_the_config_check_catches_a_weakened_setting(key, value):
    config = {**_properties(BASE_CONFIG.read_text()), key: value}
    assert _check_hardened(config)


def test_the_rendered_config_keeps_the_hardening():
    """What ``convscope-serve`` writes (store, registrations, ports added) keeps every setting."""
    if not (STORE / "digits.mar").exists():
        pytest.skip("no model store: run `make store`")
    config = _properties(render_config(STORE, free_ports()))
    assert _check_hardened(config) == []
