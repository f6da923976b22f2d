"""``model.inputs``: which input groups the model sees, and how ``auto`` resolves.

A request is ``auto`` or input groups joined by ``+`` (any order, no repeats):

    resnet   ResNet-50 image features (2048)
    stats    logo statistics (svg_quality.logostats)
    vtracer  VTracer-aware values read from per-logo tables at each row's own parameters
             (svg_quality.vtables)
    probe    the logo's real SSIM and log10(SVG bytes) at VTracer's defaults

``auto`` is ``stats+vtracer``, plus ``resnet`` when featurize used ImageNet weights
(features from a random trunk only add noise: val r 0.55 with them vs 0.92 without).
``model.probe: true`` adds ``probe`` to whatever the request resolves to. A resolved
request is canonical (groups in the order above), so it names the model's row layout.
Pure Python, no numpy: config.py validates requests with it.
"""

from __future__ import annotations

INPUT_GROUPS: tuple[str, ...] = ("resnet", "stats", "vtracer", "probe")
AUTO = "auto"
AUTO_GROUPS: tuple[str, ...] = ("stats", "vtracer")  # plus resnet with ImageNet weights


def parse_inputs(request: str, key: str = "model.inputs") -> tuple[str, ...]:
    """The groups of ``request`` (``auto`` kept as a group); ValueError naming ``key``."""
    parts = str(request).split("+")
    allowed = f"'auto' or groups of {', '.join(INPUT_GROUPS)} joined by '+', e.g. stats+vtracer"
    if any(p not in (*INPUT_GROUPS, AUTO) for p in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"params.yaml: {key} = {request!r} is invalid; allowed: {allowed}")
    return tuple(parts)


def resolve_inputs(request: str, weights_used: str, probe: bool = False) -> str:
    """``request`` with ``auto`` expanded for featurize's ``weights_used`` (``imagenet`` or
    ``random``) and ``probe`` added, in canonical order: e.g. ``stats+vtracer+probe``."""
    groups = set(parse_inputs(request))
    if AUTO in groups:
        groups.discard(AUTO)
        groups.update(AUTO_GROUPS)
        if weights_used == "imagenet":
            groups.add("resnet")
    if probe:
        groups.add("probe")
    if groups == {"probe"}:
        raise ValueError(
            f"model.inputs = {request!r} gives the model only the probe; add stats or vtracer"
        )
    return "+".join(g for g in INPUT_GROUPS if g in groups)


def groups_of(resolved: str) -> frozenset[str]:
    """The groups of a resolved (canonical) inputs string."""
    groups = parse_inputs(resolved, "inputs")
    if AUTO in groups:
        raise ValueError(f"inputs {resolved!r} is unresolved; call resolve_inputs first")
    return frozenset(groups)


def describe_resnet(
    requested: str, resolved: str, weights_used: str, pca: int = 0, dropout: float = 0.0
) -> str:
    """One line saying whether the ResNet-50 block is used and why (for the run and the
    model card), e.g. ``left out (auto: random-init trunk)`` or ``used via a PCA projection
    to 8 components fitted on the train images (imagenet trunk)``."""
    auto = AUTO in parse_inputs(requested)
    if "resnet" not in groups_of(resolved):
        if auto:
            return f"left out (auto: {weights_used}-init trunk)"
        return f"left out (model.inputs = {requested})"
    how = (
        f"via a PCA projection to {pca} components fitted on the train images"
        if pca
        else "raw (2048)"
    )
    if dropout > 0:
        how += f", block dropout {dropout:g}"
    return f"used {how} ({'auto: ' if auto else ''}{weights_used} trunk)"
