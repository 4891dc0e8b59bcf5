"""Checkpoint adapters: the only code that knows published key layouts.

Known layouts:

- ``philsyn``: philsyn/DiffWave-unconditional and philsyn/DiffWave-Vocoder (used
  by FastDPM): a pickle ``{"model_state_dict": ..., "optimizer_state_dict": ...}``
  with weight-normed convolutions (``weight_g``/``weight_v``), folded here.
- ``lmnt``: lmnt-com/diffwave: ``{"step", "model", "optimizer", "params", "scaler"}``.
- ``native``: wavefast safetensors, spec JSON in the metadata under ``wavefast_spec``.

Pickles are opened with ``torch.load(weights_only=True)``; the only extra class
allowed is a data-only stand-in for lmnt's ``diffwave.params.AttrDict`` (a dict).
"""

from __future__ import annotations

import collections
import json
import pickle
import re
from pathlib import Path
from typing import Dict, Optional

import torch

from ..errors import WavefastError
from ..fileio import is_safetensors, read_safetensors, write_safetensors
from .diffwave import DiffWave
from .presets import PRESETS, get_preset
from .spec import DiffWaveConfig, DiffusionSpec, ModelSpec

NATIVE_FORMAT = "wavefast-diffwave/1"
KNOWN_LAYOUTS = ("philsyn (FastDPM / philsyn DiffWave .pkl)", "lmnt (lmnt-com/diffwave .pt)",
                 "native (wavefast .safetensors)")


class AttrDict(dict):
    """Data-only stand-in for ``diffwave.params.AttrDict`` found in older lmnt checkpoints.

    The only class torch's weights-only unpickler is allowed to build besides its own: it can
    hold data and nothing else (``__setstate__`` copies dict entries; no attribute is set).
    """

    def __setstate__(self, state):
        if isinstance(state, dict):
            for key, value in state.items():
                if isinstance(key, str):
                    dict.__setitem__(self, key, value)


AttrDict.__module__ = "diffwave.params"
AttrDict.__qualname__ = "AttrDict"


# --- reading files ---------------------------------------------------------------------
MAX_MEMBER_BYTES = 4 << 30  # refuse archive members larger than this (a crafted size, or a zip bomb)


_CONTAINERS = (dict, collections.OrderedDict, AttrDict)  # the only types SETITEM(S) may fill


class _DataUnpickler(pickle._Unpickler):
    """A pure-Python unpickler for torch zip files that can build data and nothing else.

    Used only for lmnt files whose ``params`` is a ``diffwave.params.AttrDict`` (a dict subclass
    that torch's weights-only unpickler refuses to fill). Rules:

    - GLOBAL / STACK_GLOBAL resolve only ``torch._utils._rebuild_tensor_v2`` /
      ``_rebuild_parameter``, ``collections.OrderedDict``, torch's storage types and the
      data-only :class:`AttrDict` stand-in;
    - REDUCE calls only the two rebuild functions and OrderedDict; NEWOBJ instantiates only
      AttrDict and OrderedDict; OBJ, INST, NEWOBJ_EX and the extension registry are refused;
    - BUILD acts only on AttrDict instances (through its data-only ``__setstate__``) and sets
      only ``_metadata`` on an OrderedDict made by this file; SETITEM(S) / APPEND(S) act only on
      dicts and lists made by this file. No opcode can touch an object of the running process
      (a function's ``__defaults__``, a class, a module), which is how a refused checkpoint once
      negated every tensor loaded afterwards.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, archive, prefix):
        super().__init__(file)
        self.archive, self.prefix = archive, prefix
        self._made = set()  # ids of containers this file created

    def find_class(self, module, name):
        allowed = {("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
                   ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
                   ("collections", "OrderedDict"): collections.OrderedDict,
                   ("diffwave.params", "AttrDict"): AttrDict}
        if (module, name) in allowed:
            return allowed[(module, name)]
        if module == "torch" and name.endswith("Storage") and isinstance(getattr(torch, name, None), type):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"GLOBAL {module}.{name} is not on the allow-list")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError("unknown persistent id")
        _, storage_type, key, _location, _numel = pid
        if not (isinstance(storage_type, type) and hasattr(storage_type, "dtype")):
            raise pickle.UnpicklingError("persistent id names no storage type")
        info = self.archive.getinfo(f"{self.prefix}/data/{key}")
        if info.file_size > MAX_MEMBER_BYTES:
            raise pickle.UnpicklingError(f"storage {key} claims {info.file_size} bytes")
        raw = self.archive.read(info)
        untyped = torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8) if raw else torch.UntypedStorage(0)
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=storage_type.dtype, _internal=True)

    def _mine(self, obj) -> bool:
        return id(obj) in self._made

    def _push_made(self, obj):
        self._made.add(id(obj))
        self.append(obj)

    def load_empty_dictionary(self):
        self._push_made({})

    def load_empty_list(self):
        self._push_made([])

    def load_dict(self):
        items = self.pop_mark()
        self._push_made({items[i]: items[i + 1] for i in range(0, len(items), 2)})

    def load_list(self):
        self._push_made(self.pop_mark())

    def load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if func not in (torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, collections.OrderedDict):
            raise pickle.UnpicklingError("REDUCE of a callable that is not a tensor rebuild")
        if not isinstance(args, tuple):
            raise pickle.UnpicklingError("REDUCE arguments are not a tuple")
        result = func(*args)
        if isinstance(result, dict):
            self._made.add(id(result))
        self.stack[-1] = result

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        if cls not in (AttrDict, collections.OrderedDict) or not isinstance(args, tuple) or args:
            raise pickle.UnpicklingError("NEWOBJ of a class other than AttrDict / OrderedDict")
        self._push_made(cls.__new__(cls))

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, AttrDict) and self._mine(inst) and isinstance(state, dict):
            inst.__setstate__(state)
        elif type(inst) is collections.OrderedDict and self._mine(inst) and isinstance(state, dict) \
                and set(state) <= {"_metadata"}:
            inst._metadata = state.get("_metadata")
        else:
            raise pickle.UnpicklingError(f"BUILD on a {type(inst).__name__} is not allowed")

    def load_setitem(self):
        value = self.stack.pop()
        key = self.stack.pop()
        target = self.stack[-1]
        if not (type(target) in _CONTAINERS and self._mine(target)):
            raise pickle.UnpicklingError("SETITEM on an object this file did not create")
        target[key] = value

    def load_setitems(self):
        items = self.pop_mark()
        target = self.stack[-1]
        if not (type(target) in _CONTAINERS and self._mine(target)):
            raise pickle.UnpicklingError("SETITEMS on an object this file did not create")
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def load_append(self):
        value = self.stack.pop()
        target = self.stack[-1]
        if not (type(target) is list and self._mine(target)):
            raise pickle.UnpicklingError("APPEND on an object this file did not create")
        target.append(value)

    def load_appends(self):
        items = self.pop_mark()
        target = self.stack[-1]
        if not (type(target) is list and self._mine(target)):
            raise pickle.UnpicklingError("APPENDS on an object this file did not create")
        target.extend(items)

    def _refuse(self):
        raise pickle.UnpicklingError("opcode not allowed in a weights file (OBJ, INST, NEWOBJ_EX, EXT)")

    for _code, _name in ((pickle.EMPTY_DICT, "load_empty_dictionary"), (pickle.EMPTY_LIST, "load_empty_list"),
                         (pickle.DICT, "load_dict"), (pickle.LIST, "load_list"), (pickle.REDUCE, "load_reduce"),
                         (pickle.NEWOBJ, "load_newobj"), (pickle.BUILD, "load_build"),
                         (pickle.SETITEM, "load_setitem"), (pickle.SETITEMS, "load_setitems"),
                         (pickle.APPEND, "load_append"), (pickle.APPENDS, "load_appends"),
                         (pickle.OBJ, "_refuse"), (pickle.INST, "_refuse"), (pickle.NEWOBJ_EX, "_refuse"),
                         (pickle.EXT1, "_refuse"), (pickle.EXT2, "_refuse"), (pickle.EXT4, "_refuse")):
        dispatch[_code[0]] = locals()[_name]
    del _code, _name


def _load_data_only(path: Path):
    import io
    import zipfile

    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(names) != 1:
            raise pickle.UnpicklingError("not a torch zip checkpoint (one */data.pkl expected)")
        info = archive.getinfo(names[0])
        if info.file_size > MAX_MEMBER_BYTES:
            raise pickle.UnpicklingError("data.pkl is too large")
        prefix = names[0][: -len("/data.pkl")]
        return _DataUnpickler(io.BytesIO(archive.read(info)), archive, prefix).load()


def safe_torch_load(path: Path):
    """Load a pickled checkpoint as data only; every failure is one WavefastError naming the file.

    Torch's own weights-only unpickler first; files whose only obstacle is lmnt's
    ``diffwave.params.AttrDict`` go through :class:`_DataUnpickler`. Neither can run code or
    change the running process.
    """
    path = Path(path)
    try:
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "diffwave.params.AttrDict" not in str(exc):
                raise
            return _load_data_only(path)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found or "global" in text.lower():
            what = f" (it references {found.group(1)})" if found else ""
            raise WavefastError(f"{path} needs code to load{what}; wavefast never unpickles code. Re-save the "
                                "weights as a plain state dict, or convert them where the code is trusted") from None
        raise WavefastError(f"cannot read checkpoint {path}: not a weights file in a known layout "
                            f"({'; '.join(KNOWN_LAYOUTS)}); refused: {text.splitlines()[0][:160] if text else ''}"
                            ) from None
    except MemoryError:
        raise WavefastError(f"cannot read checkpoint {path}: it asks for more memory than there is") from None
    except WavefastError:
        raise
    except Exception as exc:  # zip, storage and size errors from a damaged or crafted file
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise WavefastError(f"cannot read checkpoint {path}: not a checkpoint in a known layout "
                            f"({'; '.join(KNOWN_LAYOUTS)}) ({type(exc).__name__}{': ' + first if first else ''})"
                            ) from None


def _strip_prefix(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def detect_layout(obj) -> str:
    """'philsyn', 'lmnt' or raise, from the loaded pickle's structure and keys."""
    if isinstance(obj, dict):
        if "model_state_dict" in obj:
            return "philsyn"
        if "model" in obj and isinstance(obj["model"], dict):
            return "lmnt"
        keys = [k for k in obj if isinstance(k, str)]
        if any(k.startswith(("residual_layer.residual_blocks.", "module.residual_layer.")) for k in keys):
            return "philsyn"
        if any(k.startswith(("residual_layers.", "module.residual_layers.")) for k in keys):
            return "lmnt"
    top = sorted(obj)[:6] if isinstance(obj, dict) else type(obj).__name__
    raise WavefastError(f"unknown checkpoint layout (top-level keys {top}); known layouts: {'; '.join(KNOWN_LAYOUTS)}")


# --- weight norm ---------------------------------------------------------------------
def fold_weight_norm(state: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    """``{prefix}.weight`` and ``.bias`` with ``w = g v / ||v||`` (norm over all dims but 0)."""
    if f"{prefix}.weight_g" in state:
        g, v = state[f"{prefix}.weight_g"], state[f"{prefix}.weight_v"]
    elif f"{prefix}.parametrizations.weight.original0" in state:
        g, v = state[f"{prefix}.parametrizations.weight.original0"], state[f"{prefix}.parametrizations.weight.original1"]
    elif f"{prefix}.weight" in state:
        return {"weight": state[f"{prefix}.weight"].float(), "bias": state[f"{prefix}.bias"].float()}
    else:
        raise WavefastError(f"checkpoint is missing the weights of {prefix!r}")
    v = v.double()
    norm = v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))
    return {"weight": (g.double() * v / norm).float(), "bias": state[f"{prefix}.bias"].float()}


# --- philsyn ---------------------------------------------------------------------------
def _philsyn_shapes(state):
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"residual_layer\.residual_blocks\.(\d+)\.", k))}
    if not blocks:
        raise WavefastError("philsyn checkpoint has no residual_layer.residual_blocks.* weights")
    first = fold_weight_norm(state, "init_conv.0.conv")["weight"]
    skip = fold_weight_norm(state, "residual_layer.residual_blocks.0.skip_conv")["weight"]
    mel_key = [k for k in state if k.startswith("residual_layer.residual_blocks.0.mel_conv.conv.")]
    n_mels = fold_weight_norm(state, "residual_layer.residual_blocks.0.mel_conv.conv")["weight"].shape[1] if mel_key else 0
    return dict(residual_channels=first.shape[0], skip_channels=skip.shape[0], residual_layers=len(blocks), n_mels=n_mels)


def _philsyn_spec(shapes: dict, preset: Optional[str], config_json: Optional[Path]) -> ModelSpec:
    def matches(spec: ModelSpec) -> bool:
        a = spec.arch
        return (a.residual_channels, a.skip_channels, a.residual_layers, a.n_mels) == (
            shapes["residual_channels"], shapes["skip_channels"], shapes["residual_layers"], shapes["n_mels"])

    if preset is not None:
        spec = get_preset(preset)
        if spec.source_layout != "philsyn" or not matches(spec):
            raise WavefastError(f"preset {preset!r} does not fit this philsyn checkpoint {shapes}")
        return spec
    if config_json is not None and config_json.is_file():
        return _spec_from_philsyn_config(config_json, shapes)
    candidates = [name for name, spec in PRESETS.items() if spec.source_layout == "philsyn" and matches(spec)]
    if len(candidates) == 1:
        return PRESETS[candidates[0]]
    raise WavefastError(
        f"this philsyn checkpoint ({shapes}) does not say its dilation cycle, T or beta range; pass a preset "
        f"({', '.join(n for n, s in PRESETS.items() if s.source_layout == 'philsyn')}) or put the upstream "
        "config.json next to it")


def _spec_from_philsyn_config(path: Path, shapes: dict) -> ModelSpec:
    try:
        cfg = json.loads(path.read_text())
        net = cfg.get("wavenet_config") or cfg.get("model_config")
        diff = cfg["diffusion_config"]
        trainset = cfg.get("trainset_config", {})
    except (OSError, json.JSONDecodeError, KeyError, AttributeError) as exc:
        raise WavefastError(f"cannot read philsyn config {path}: {exc}") from None
    if not net:
        raise WavefastError(f"philsyn config {path} has no 'wavenet_config'")
    n_mels = shapes["n_mels"]
    arch = DiffWaveConfig(int(net["res_channels"]), int(net["skip_channels"]), int(net["num_res_layers"]),
                          int(net["dilation_cycle"]), n_mels=n_mels, step_embedding="sinusoidal",
                          per_layer_upsampler=True, residual_includes_step=True)
    if (arch.residual_channels, arch.skip_channels, arch.residual_layers) != (
            shapes["residual_channels"], shapes["skip_channels"], shapes["residual_layers"]):
        raise WavefastError(f"config {path} describes a different network than the checkpoint ({shapes})")
    sr = int(trainset.get("sampling_rate", 22050 if n_mels else 16000))
    return ModelSpec(arch=arch, diffusion=DiffusionSpec(int(diff["T"]), float(diff["beta_0"]), float(diff["beta_T"])),
                     sample_rate=sr, hop_length=256, mel_frontend="tacotron2" if n_mels else None,
                     segment_length=int(trainset.get("segment_length", 16000)), name=path.parent.name or "philsyn",
                     source_layout="philsyn")


def _philsyn_state(state, spec: ModelSpec) -> Dict[str, torch.Tensor]:
    out = {}

    def put(dst, src, weight_normed=True):
        folded = fold_weight_norm(state, src) if weight_normed else {
            "weight": state[f"{src}.weight"].float(), "bias": state[f"{src}.bias"].float()}
        out[f"{dst}.weight"], out[f"{dst}.bias"] = folded["weight"], folded["bias"]

    put("input_conv", "init_conv.0.conv")
    put("step_fc1", "residual_layer.fc_t1", weight_normed=False)
    put("step_fc2", "residual_layer.fc_t2", weight_normed=False)
    for n in range(spec.arch.residual_layers):
        src = f"residual_layer.residual_blocks.{n}"
        put(f"layers.{n}.step_proj", f"{src}.fc_t", weight_normed=False)
        put(f"layers.{n}.dilated_conv", f"{src}.dilated_conv_layer.conv")
        res, skip = fold_weight_norm(state, f"{src}.res_conv"), fold_weight_norm(state, f"{src}.skip_conv")
        out[f"layers.{n}.out_proj.weight"] = torch.cat([res["weight"], skip["weight"]], 0)
        out[f"layers.{n}.out_proj.bias"] = torch.cat([res["bias"], skip["bias"]], 0)
        if spec.arch.conditional:
            put(f"layers.{n}.upsampler.conv1", f"{src}.upsample_conv2d.0")
            put(f"layers.{n}.upsampler.conv2", f"{src}.upsample_conv2d.1")
            put(f"layers.{n}.cond_proj", f"{src}.mel_conv.conv")
    put("skip_conv", "final_conv.0.conv")
    put("output_conv", "final_conv.2.conv", weight_normed=False)
    return out


# --- lmnt ------------------------------------------------------------------------------
def _swap_halves(w: torch.Tensor) -> torch.Tensor:
    """lmnt gates sigmoid(first half) * tanh(second half); ours tanh(first) * sigmoid(second)."""
    half = w.shape[0] // 2
    return torch.cat([w[half:], w[:half]], 0)


def _lmnt_spec(state, params: Optional[dict], preset: Optional[str]) -> ModelSpec:
    layers = {int(m.group(1)) for k in state if (m := re.match(r"residual_layers\.(\d+)\.", k))}
    channels = state["input_projection.weight"].shape[0]
    conditional = "residual_layers.0.conditioner_projection.weight" in state
    n_mels = state["residual_layers.0.conditioner_projection.weight"].shape[1] if conditional else 0
    if preset is not None:
        spec = get_preset(preset)
        a = spec.arch
        if spec.source_layout != "lmnt" or (a.residual_channels, a.residual_layers, a.n_mels) != (channels, len(layers), n_mels):
            raise WavefastError(f"preset {preset!r} does not fit this lmnt checkpoint "
                                f"({channels} channels, {len(layers)} layers, {n_mels} mels)")
        return spec
    if not params:
        if (channels, len(layers), n_mels) == (64, 30, 80):
            return PRESETS["lmnt-lj"]
        raise WavefastError("this lmnt checkpoint has no 'params'; pass --preset lmnt-lj or a matching preset")
    try:
        schedule = [float(b) for b in params["noise_schedule"]]
        T = len(schedule)
        arch = DiffWaveConfig(channels, channels, len(layers), int(params.get("dilation_cycle_length", 10)),
                              n_mels=n_mels, step_embedding="table", embedding_table_size=T)
        return ModelSpec(arch=arch, diffusion=DiffusionSpec(T, schedule[0], schedule[-1]),
                         sample_rate=int(params.get("sample_rate", 22050)), hop_length=int(params.get("hop_samples", 256)),
                         mel_frontend="lmnt" if conditional else None,
                         segment_length=int(params.get("audio_len", 16000) or 16000), name="lmnt", source_layout="lmnt")
    except (KeyError, TypeError, ValueError) as exc:
        raise WavefastError(f"lmnt checkpoint params are incomplete: {exc}") from None


def _lmnt_state(state, spec: ModelSpec) -> Dict[str, torch.Tensor]:
    out = {}

    def put(dst, src, swap=False):
        w, b = state[f"{src}.weight"].float(), state[f"{src}.bias"].float()
        out[f"{dst}.weight"], out[f"{dst}.bias"] = (_swap_halves(w), _swap_halves(b)) if swap else (w, b)

    put("input_conv", "input_projection")
    put("step_fc1", "diffusion_embedding.projection1")
    put("step_fc2", "diffusion_embedding.projection2")
    if spec.arch.conditional:
        put("upsampler.conv1", "spectrogram_upsampler.conv1")
        put("upsampler.conv2", "spectrogram_upsampler.conv2")
    for n in range(spec.arch.residual_layers):
        src = f"residual_layers.{n}"
        put(f"layers.{n}.step_proj", f"{src}.diffusion_projection")
        put(f"layers.{n}.dilated_conv", f"{src}.dilated_conv", swap=True)
        put(f"layers.{n}.out_proj", f"{src}.output_projection")
        if spec.arch.conditional:
            put(f"layers.{n}.cond_proj", f"{src}.conditioner_projection", swap=True)
    put("skip_conv", "skip_projection")
    put("output_conv", "output_projection")
    return out


# --- native ----------------------------------------------------------------------------
def save_native(model, path, dtype: torch.dtype = torch.float16, extra_metadata: Optional[dict] = None):
    """Write ``model`` as wavefast safetensors (atomic), spec JSON in the metadata."""
    tensors = {k: v.detach().to("cpu", dtype) for k, v in model.state_dict().items()}
    metadata = {"format": NATIVE_FORMAT, "wavefast_spec": model.spec.to_json()}
    metadata.update({k: str(v) for k, v in (extra_metadata or {}).items()})
    return write_safetensors(path, tensors, metadata)


def _load_native(path: Path):
    state, metadata = read_safetensors(path, "checkpoint")
    if "wavefast_spec" not in metadata:
        raise WavefastError(f"{path} is a safetensors file without wavefast metadata (no 'wavefast_spec'); "
                            "convert it with 'wavefast convert' from its original layout")
    try:
        data = json.loads(metadata["wavefast_spec"])
    except ValueError as exc:
        raise WavefastError(f"{path}: metadata 'wavefast_spec' is not valid JSON ({exc})") from None
    try:
        spec = ModelSpec.from_dict(data)
    except WavefastError as exc:
        raise WavefastError(f"{path}: metadata 'wavefast_spec': {exc}") from None
    return state, spec


# --- public entry points ----------------------------------------------------------------
def read_checkpoint(path, preset: Optional[str] = None, config: Optional[str] = None):
    """(our state dict, ModelSpec) from any supported file."""
    path = Path(path)
    if not path.is_file():
        raise WavefastError(f"checkpoint not found: {path}")
    if is_safetensors(path):
        state, spec = _load_native(path)
        if preset is not None:
            raise WavefastError("a wavefast .safetensors file carries its own spec; drop --preset")
        return state, spec
    obj = safe_torch_load(path)
    layout = detect_layout(obj)
    try:
        return _adapt(obj, layout, path, preset, config)
    except WavefastError:
        raise
    except (KeyError, TypeError, AttributeError, IndexError, ValueError, RuntimeError) as exc:
        raise WavefastError(f"{path}: a {layout} checkpoint with missing or malformed entries "
                            f"({type(exc).__name__}: {str(exc)[:200]})") from None


def _adapt(obj, layout: str, path: Path, preset, config):
    """(our state dict, spec) of a loaded philsyn or lmnt pickle."""
    if layout == "philsyn":
        state = _strip_prefix(obj.get("model_state_dict", obj))
        config_json = Path(config) if config else path.parent / "config.json"
        spec = _philsyn_spec(_philsyn_shapes(state), preset, config_json)
        return _philsyn_state(state, spec), spec
    state = _strip_prefix(obj["model"] if "model" in obj else obj)
    params = obj.get("params") if isinstance(obj.get("params"), dict) else None
    spec = _lmnt_spec(state, params, preset)
    return _lmnt_state(state, spec), spec


def build_model(spec: ModelSpec):
    """An untrained network for a spec: :class:`DiffWave`, or the source-filter family's model."""
    if getattr(spec.arch, "family", "diffwave") == "sourcefilter":
        from .sourcefilter import SourceFilterDiffWave

        return SourceFilterDiffWave(spec)
    return DiffWave(spec)


def load_model(path, preset: Optional[str] = None, config: Optional[str] = None, device=None, dtype=None):
    """Load any supported checkpoint as a model in eval mode (float32 unless ``dtype`` says otherwise).

    ``preset`` names the architecture/diffusion for files that do not store it
    (philsyn); ``config`` points at an upstream ``config.json``.
    """
    state, spec = read_checkpoint(path, preset, config)
    model = build_model(spec)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        raise WavefastError(f"checkpoint {path} does not match its {spec.name} network: missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]}, wrong shapes {wrong[:3]} (a damaged file, or a spec that "
                            "contradicts the weights)")
    model.load_state_dict(state, strict=False)
    model = model.eval()
    if dtype is not None:
        model = model.to(dtype=dtype)
    return model.to(device) if device is not None else model


def convert(src, dst, preset: Optional[str] = None, config: Optional[str] = None, dtype=torch.float32) -> Path:
    """Convert any supported checkpoint to the native safetensors format."""
    model = load_model(src, preset, config)
    return save_native(model, dst, dtype=dtype, extra_metadata={"converted_from": Path(src).name})
