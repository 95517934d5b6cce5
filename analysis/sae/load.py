"""Loading attention-output SAEs (sae-lens on-disk format) and checking them against a model.

A local SAE folder holds ``cfg.json`` and ``sae_weights.safetensors`` as written by sae-lens
(``SAE.save_model`` / ``save_inference_model``). Before anything is built, the folder is checked:
both files exist, the config is JSON with ``d_in``/``d_sae``, the weights are readable safetensors
whose ``W_enc``/``W_dec`` shapes match the config, and the hook is an attention ``hook_z``
(``blocks.L.attn.hook_z``, or the bridge's canonical ``blocks.L.attn.o.hook_in``). Given a model,
``d_in`` must equal ``n_heads * d_head`` and ``L`` must be one of its layers. Every failure raises
``SAELoadError`` naming the file or field and the fix.

Pretrained SAEs from sae-lens' registry (e.g. release ``gpt2-small-hook-z-kk``) are looked up by
release/id in the registry shipped with sae-lens (offline), then downloaded from the Hugging Face
hub. The hub is probed first with a short TCP connect, so an offline machine gets a clear error in
about a second instead of minutes of retries.

headlab always feeds SAEs flattened ``hook_z`` (``[..., n_heads * d_head]``), so the loaded SAE's
forward-pass reshaping is switched off; the saved config keeps ``reshape_activations="hook_z"``
for sae-lens users.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from sae_lens.saes.sae import SAE
from safetensors import SafetensorError, safe_open

from analysis import hooks
from analysis.hooks import hook_z_layer

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"


class SAELoadError(ValueError):
    """An SAE cannot be loaded or does not fit the model; the message says why and what to do."""


def _hook_name(cfg: dict[str, Any]) -> str | None:
    meta = cfg.get("metadata") or {}
    return meta.get("hook_name") or cfg.get("hook_name") or cfg.get("hook_point")


def read_sae_config(folder: str | Path) -> dict[str, Any]:
    """``cfg.json`` of an SAE folder, checked for presence, JSON syntax and required fields."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SAELoadError(f"SAE folder {folder} does not exist; pass a folder with {CFG_FILE}")
    for name in (CFG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise SAELoadError(
                f"SAE folder {folder} has no {name}; an sae-lens SAE folder holds "
                f"{CFG_FILE} and {WEIGHTS_FILE}"
            )
    try:
        cfg = json.loads((folder / CFG_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SAELoadError(
            f"{folder / CFG_FILE} is not valid JSON ({exc}); re-save the SAE"
        ) from None
    if not isinstance(cfg, dict):
        raise SAELoadError(f"{folder / CFG_FILE} must hold a JSON object")
    for key in ("d_in", "d_sae"):
        if not isinstance(cfg.get(key), int) or cfg[key] <= 0:
            raise SAELoadError(f"{folder / CFG_FILE}: {key} must be a positive integer")
    return cfg


def _check_weights(folder: Path, cfg: dict[str, Any]) -> None:
    path = folder / WEIGHTS_FILE
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise SAELoadError(f"{path} is not a readable safetensors file ({exc})") from None
    d_in, d_sae = cfg["d_in"], cfg["d_sae"]
    expected = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    for key, shape in expected.items():
        if key not in shapes:
            raise SAELoadError(f"{path} has no tensor {key!r}; it is not an sae-lens SAE")
        if shapes[key] != shape:
            raise SAELoadError(
                f"{path}: {key} has shape {list(shapes[key])} but {CFG_FILE} says "
                f"{list(shape)} (d_in={d_in}, d_sae={d_sae}); the files do not belong together"
            )


def check_sae_fits_model(
    hook_name: str | None, d_in: int, model: TransformerBridge | None, where: str
) -> int:
    """The SAE's layer; raises ``SAELoadError`` if the hook or ``d_in`` does not fit ``model``."""
    layer = hook_z_layer(hook_name)
    if layer is None:
        raise SAELoadError(
            f"{where} reads hook {hook_name!r}, not an attention output; headlab's attention "
            f"SAEs read each layer's z ({hooks.z(0).name} for layer 0)"
        )
    if model is None:
        return layer
    n_heads, d_head, n_layers = model.cfg.n_heads, model.cfg.d_head, model.cfg.n_layers
    if layer >= n_layers:
        raise SAELoadError(
            f"{where} reads layer {layer} but the model has only {n_layers} layers; "
            "use an SAE trained on this model"
        )
    if d_in != n_heads * d_head:
        raise SAELoadError(
            f"{where} has d_in={d_in} but hook_z of this model has n_heads*d_head = "
            f"{n_heads}*{d_head} = {n_heads * d_head}; use an SAE trained on this model"
        )
    return layer


def _prepare(sae: SAE[Any], layer: int) -> SAE[Any]:
    sae.turn_off_forward_pass_hook_z_reshaping()
    sae.cfg.metadata.hook_name = hooks.z(layer).name
    sae.eval()
    return sae


def load_sae_folder(
    folder: str | Path, *, model: TransformerBridge | None = None, device: str = "cpu"
) -> SAE[Any]:
    """Load an sae-lens SAE folder, validated (and, given ``model``, checked against it)."""
    folder = Path(folder)
    cfg = read_sae_config(folder)
    _check_weights(folder, cfg)
    layer = check_sae_fits_model(_hook_name(cfg), cfg["d_in"], model, f"SAE {folder}")
    try:
        sae = SAE.load_from_disk(folder, device=device)
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise SAELoadError(f"sae-lens could not load {folder}: {exc}") from None
    return _prepare(sae, layer)


def sae_layer(sae: SAE[Any]) -> int:
    layer = hook_z_layer(sae.cfg.metadata.hook_name)
    if layer is None:
        raise SAELoadError(f"SAE hook {sae.cfg.metadata.hook_name!r} is not an attention hook_z")
    return layer


def hub_reachable(timeout_s: float = 2.0) -> tuple[bool, str]:
    """Whether a TCP connection to the Hugging Face hub (``HF_ENDPOINT``) opens in time."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False, "HF_HUB_OFFLINE is set"
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout_s):
            return True, ""
    except OSError as exc:
        return False, f"{url.hostname}:{port}: {exc}"


def _registry_entry(release: str, sae_id: str) -> None:
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if release not in directory:
        hook_z = sorted(r for r, v in directory.items() if any("hook_z" in k for k in v.saes_map))
        raise SAELoadError(
            f"unknown sae-lens release {release!r}; attention (hook_z) releases: {hook_z}"
        )
    ids = list(directory[release].saes_map)
    if sae_id not in ids:
        raise SAELoadError(f"release {release!r} has no SAE {sae_id!r}; its ids: {ids[:12]}")


def load_sae_pretrained(
    release: str, sae_id: str, *, model: TransformerBridge | None = None, device: str = "cpu"
) -> SAE[Any]:
    """Load ``release``/``sae_id`` from sae-lens' pretrained registry (needs the hub)."""
    _registry_entry(release, sae_id)
    ok, why = hub_reachable()
    if not ok:
        raise SAELoadError(
            f"cannot download SAE {release}/{sae_id}: the Hugging Face hub is unreachable "
            f"({why}). Download it where the hub is reachable and pass the local folder "
            f"(with {CFG_FILE} and {WEIGHTS_FILE}) as --sae-path instead"
        )
    try:
        sae = SAE.from_pretrained(release, sae_id, device=device)
    except OSError as exc:
        raise SAELoadError(
            f"downloading SAE {release}/{sae_id} failed ({exc}); pass a local folder as "
            "--sae-path instead"
        ) from None
    where = f"SAE {release}/{sae_id}"
    layer = check_sae_fits_model(sae.cfg.metadata.hook_name, sae.cfg.d_in, model, where)
    return _prepare(sae, layer)
