"""The global descriptor may run in bfloat16 where the CPU multiplies it in hardware: it must stay in the
float32 descriptor's vector space, since an index built in one precision is served in the other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

from ml.models.image_embedder import (
    ImageEmbedder,
    cpu_has_native_bfloat16,
    resolve_bfloat16,
)


@pytest.mark.parametrize(("flags", "native"), [
    ("fpu sse avx2 avx512f avx512_bf16 avx512_vnni", True),
    ("fpu avx2 avx512f amx_bf16 amx_tile", True),
    ("fpu sse avx2 avx512f avx512bw avx512_vnni", False),  # AVX-512 alone: oneDNN would emulate bfloat16
])
def test_bfloat16_is_chosen_only_where_the_cpu_multiplies_it(tmp_path: Path, flags: str, native: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert cpu_has_native_bfloat16(cpuinfo) is native
    assert cpu_has_native_bfloat16(tmp_path / "missing") is False
    assert resolve_bfloat16("float32") is False
    assert resolve_bfloat16("bfloat16") is True


def _real_photo() -> Image.Image:
    """A real photo that ships with matplotlib (a dependency of the evaluation report): flat drawn pictures
    light up few channels, and their descriptors move more with rounding than any photo's."""
    return Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")


def test_a_bfloat16_descriptor_stays_in_the_float32_vector_space() -> None:
    image = _real_photo()
    exact = ImageEmbedder(precision="float32").embed_one(image)
    fast = ImageEmbedder(precision="bfloat16").embed_one(image)
    assert exact.vector.dtype == fast.vector.dtype == np.float32
    assert float(exact.vector @ fast.vector) > 0.998  # this photo: 0.9997; 49 dev photos: 0.9986 at the least
    assert abs(float(np.linalg.norm(fast.vector)) - 1.0) < 1e-5
    assert int(exact.imagenet_logits.argmax()) == int(fast.imagenet_logits.argmax())
    assert ImageEmbedder(precision="float32").model_id == ImageEmbedder(precision="bfloat16").model_id
