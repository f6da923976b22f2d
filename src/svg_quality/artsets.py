"""Which vector icon sets the project may read, pinned: training artwork and the transfer folder.

Every set is an Iconify JSON package on npm (``@iconify-json/<set>``), pinned by version and
by npm's tarball integrity (sha512), so a set name means one exact file everywhere.

- :data:`TRAINING`: the multi-colour, non-brand sets ``data.artwork`` may name. The first
  seven are vendored in the repository's ``artwork/`` folder (a type-balanced sample each,
  rebuilt by ``scripts/vendor_artwork.py``); the others are fetched at ``prepare`` time
  when named (hash-checked, cached outside the DVC outs).
- :data:`TRANSFER`: the real-icon folder's sets (``bench/build_real_icons.py``). The model is
  judged on them, so they are never training data.
- :func:`refused`: why a set name may never be trained on (brand and logo sets, the transfer
  sets, flag sets, ``fluent-emoji*``), checked before the pins so a refusal says why.
- :func:`training_icon`: the same rule inside an allowed set, icon by icon: a brand logo
  (``spotify-logo-2``, ``wechat``) or a national flag (``flag-for-chile``) of a training set
  is never drawn, so no brand the model is judged on and no flag of the real-icon folder's
  ``circle-flags`` reaches training.

This module is imported by the config, so it holds data and checks only (no rendering).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class Package:
    """One pinned npm package holding an Iconify icon set (``package/icons.json``)."""

    name: str  # "@iconify-json/emojione"
    version: str
    integrity: str  # npm's dist.integrity: "sha512-" + base64 digest of the .tgz
    license: str  # SPDX id
    author: str = ""

    @property
    def short(self) -> str:
        """The set's name: ``emojione``."""
        return self.name.split("/")[-1]

    @property
    def tarball(self) -> str:
        """``npm pack``'s file name for the package: ``iconify-json-emojione-1.2.3.tgz``."""
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"

    @property
    def url(self) -> str:
        """The tarball's address on the npm registry (what ``npm pack`` downloads)."""
        return f"{REGISTRY}/{self.name}/-/{self.short}-{self.version}.tgz"


def _iconify(short: str, version: str, integrity: str, license: str, author: str) -> Package:
    return Package(f"@iconify-json/{short}", version, integrity, license, author)


TRAINING = {
    p.short: p
    for p in (
        _iconify(
            "emojione",
            "1.2.3",
            "sha512-T9+T3HIbJNLKKsmxYKlaYhvnHYkz/HNYTV7SHCXVZPfeUi4FqskY70YeN8yYAZT8cCv7w5vJxS4Q1m8zb9CMMg==",
            "CC-BY-4.0",
            "Emoji One",
        ),
        _iconify(
            "fxemoji",
            "1.2.2",
            "sha512-UAasRaxzFUKfIGSmLwnoarsssA4LX0VLLuEmplIqM6ZNQqIQRtav8tZ4H1neTlBreXuMQyAifr5jP4kn78DpiQ==",
            "Apache-2.0",
            "Mozilla",
        ),
        _iconify(
            "fluent-color",
            "1.2.21",
            "sha512-VETjGx7BMpVsCR3HV5g5t6oBGZ92XKzIRClS5xUvDn1YHAkQTF9OyF/aFdtxYOC8JROoI1SNO/Ql6jZeK7mroA==",
            "MIT",
            "Microsoft Corporation",
        ),
        _iconify(
            "meteocons",
            "1.2.4",
            "sha512-E7YV02ql5WmJgAOpXU/hoF9Mdshq73KjwR6fBxZ5SrqMJghMa3CIcRG6NQGwP4I1uBOhIjOFlAikYoPAKuT56A==",
            "MIT",
            "Bas Milius",
        ),
        _iconify(
            "streamline-emojis",
            "1.2.4",
            "sha512-iNr9T9XuZVTyQPJO8ZlLxBzPkpi7qMl+z1l0C31vpEMqhPMelth3n7CeWQYtixdetDPdI81yeG4ROqjWpYJE6A==",
            "CC-BY-4.0",
            "Streamline",
        ),
        _iconify(
            "streamline-ultimate-color",
            "1.2.2",
            "sha512-NAbD3xLtg3069865B5CLUulp/eowPNCiDfJBxVAmA+LKLPpxU7EIEJ2+mSfWriPd+ahORWyqjRnoPVkTJopEgg==",
            "CC-BY-4.0",
            "Streamline",
        ),
        _iconify(
            "icon-park-twotone",
            "1.2.4",
            "sha512-AhnGngG6DxuIZMsz4FMrv0QWTRM/CZ3NnEeaceV6psKSgt/axW+hft7oQ6pIAFN9KB95Kp3hbJuhlhG3ao60eQ==",
            "Apache-2.0",
            "ByteDance",
        ),
        # fetched at prepare time only when named in data.artwork (not vendored)
        _iconify(
            "streamline-freehand-color",
            "1.2.2",
            "sha512-ql3aN0gPHIClR74SkG89oykRB1LxmwhIWYDM425bVsoZRNhl2uHtNMmIs6CADrCcyhdNQwtieaj49BIT0Idu5A==",
            "CC-BY-4.0",
            "Streamline",
        ),
        _iconify(
            "emojione-v1",
            "1.2.3",
            "sha512-UjI2VQEXVtGlPBvQuxEizro7QCgBcJDOYwKUupquvvZ8UV4xOlvm45IU82JYWegiAWLerY79gFLMZ26U6Ms+ww==",
            "CC-BY-SA-4.0",
            "Emoji One",
        ),
        _iconify(
            "duo-icons",
            "1.2.2",
            "sha512-XA2HWgiQE7s5CPpn6P9VFeRx3Y99hnscQsqPiZKdocdTGmYViKoQLhQEQfPgoU2trI1twdwiT/xkq7N9OY1rbg==",
            "MIT",
            "fernandcf",
        ),
    )
}
# The sets vendored in artwork/ (the default mix draws from these, no network needed).
VENDORED = (
    "emojione",
    "fxemoji",
    "fluent-color",
    "meteocons",
    "streamline-emojis",
    "streamline-ultimate-color",
    "icon-park-twotone",
)

TRANSFER = tuple(
    _iconify(short, version, integrity, license, "")
    for short, version, integrity, license in (
        (
            "twemoji",
            "1.2.5",
            "sha512-uKpuIEV0v6K5BW3Mjdyl+XKFVAbbcPxAgifKvEMtZoUZB5+YiY5zaMm2uNNCxyXzAWU9yNLlj41WU6/mvgALsw==",
            "CC-BY-4.0",
        ),
        (
            "openmoji",
            "1.2.29",
            "sha512-vXdhkqcXVSO6suy+m9LbcUM3OdVyuNOtpV8/als/WqfkQIRxevL5Geb/g+6GH/Qwnq1OqksEmaDGTCmZ5nFKJQ==",
            "CC-BY-SA-4.0",
        ),
        (
            "noto",
            "1.2.9",
            "sha512-DQiuXENbun41ch+XPSV55H9FaWKpHTyz46YIKtSaKYD4fIDDzL1tR6H4np/T38jfrTAeI3rcKF0mqHYeZVAuaw==",
            "Apache-2.0",
        ),
        (
            "flat-color-icons",
            "1.2.3",
            "sha512-KcmJ7CY0TKFv5GuBjiS4/v++jEcNXna1jfY+yq014tnw/MN/jMI2oYpoMHGuIpYtUqDu7eove+WySnOYO8nS3w==",
            "MIT",
        ),
        (
            "circle-flags",
            "1.2.11",
            "sha512-vrx2btOkTQ4/P75ElEDnjXShmNTwInXuhhpIQQ6U6YUTdxfWyvm/4ijNG8FX8iWFr+sqqQRCvXpm2RfRtjVXfg==",
            "MIT",
        ),
    )
)

# Never training data, with the reason; fnmatch patterns, first match wins.
REFUSED = (
    (("twemoji", "openmoji", "noto", "noto-v1", "flat-color-icons", "circle-flags"),
     "is a set of the real-icon folder the model is judged on"),
    (("logos", "simple-icons", "devicon", "devicon-plain", "skill-icons", "*-brands", "bxl",
      "cib", "vscode-icons", "material-icon-theme", "catppuccin", "token-branded",
      "cryptocurrency*", "brandico", "entypo-social", "mdi-*brand*"),
     "is a brand or logo set (it overlaps the logos the model is judged on)"),
    (("*flag*", "cif", "fi", "flagpack", "country-flags"), "is a flag set"),
    (("fluent-emoji*",), "is a Fluent Emoji set (left out by the project's data rules)"),
)  # fmt: skip


# Icons of an allowed set that are brand logos or national flags, by name (whole name).
# Found by listing every name of the pinned sets with logo/flag/brand in it and the brands
# the sets draw (streamline-ultimate-color: 40 "<brand>-logo"; emojione: 259 "flag-for-*";
# icon-park-twotone: adobe-*, bitcoin, wechat, ...). Fruit stays (red-apple, pineapple).
NOT_TRAINING_ICON = re.compile(
    r"(^|-)logos?(-\d+)?$"  # <brand>-logo, <brand>-logo-2
    r"|^flag-for-|^flag-(england|scotland|wales)$"  # national flags (emojione, emojione-v1)
    r"|^(chinese|france|greatbritain|italian|japan|korea|russian|spanish)flag$"  # fxemoji
    r"|(^|-)(adobe|android|bitcoin|bytedance|dropbox|facebook|figma|google|instagram"
    r"|mastercard|nintendo|tiktok|twitter|visa|wechat|weibo|windows|xigua|youtube)(-|$)"
    r"|^(apple|apple-one|sketch)$"  # the brands, not the fruit or a drawing
)


def training_icon(name: str) -> bool:
    """Whether the icon ``name`` of an allowed set may be trained on (not a brand or flag)."""
    return NOT_TRAINING_ICON.search(name) is None


def refused(name: str) -> str | None:
    """Why ``name`` may never be training artwork, or None when it may."""
    for patterns, why in REFUSED:
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            return why
    return None


def check_sets(key: str, names: tuple[str, ...]) -> None:
    """Raise ValueError naming ``key`` when a set is refused, unpinned or repeated."""
    for name in names:
        why = refused(name)
        if why:
            raise ValueError(f"{key}: {name!r} {why}; it may never be training data")
        if name not in TRAINING:
            raise ValueError(
                f"{key}: {name!r} is not a pinned training set; use one of "
                f"{', '.join(TRAINING)} (pins in svg_quality/artsets.py)"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"{key}: {list(names)} names a set twice")
