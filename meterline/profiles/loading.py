"""Profile files: one TOML file per meter model, named after the profile id.

The profiles meterline ships are in ``meterline/profiles/devices/``; a gateway or simulator
configuration may add a directory of its own (a file there with a shipped profile's name
replaces it). A file that is not a valid profile is refused with every problem found, each
naming the field and why (``ProfileError``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from meterline.profiles.model import Profile
from meterline.units import Utility

SHIPPED = Path(__file__).parent / "devices"


class ProfileError(ValueError):
    """A profile file that cannot be used; the message names the file, the field and why."""


def describe_errors(exc: ValidationError, data: Mapping[str, Any] | None = None) -> list[str]:
    """pydantic's errors as ``field.path: why`` lines; a register is named after its index,
    like ``registers[2] (import_energy).type``."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        parts: list[str] = []
        node: Any = data
        for key in error["loc"]:
            if isinstance(key, int):
                label = f"[{key}]"
                item = node[key] if isinstance(node, Sequence) and key < len(node) else None
                if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                    label += f" ({item['name']})"
                parts.append(label)
                node = item
            else:
                parts.append(("." if parts else "") + str(key))
                node = node.get(key) if isinstance(node, Mapping) else None
        where = "".join(parts) or "(file)"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return lines


def parse_profile(data: Mapping[str, Any], profile_id: str, source: str) -> Profile:
    """A profile from parsed TOML; ``profile_id`` is the file's name. ProfileError if not."""
    if "id" in data and data["id"] != profile_id:
        raise ProfileError(f"{source}: id: {data['id']!r} differs from the file name "
                           f"{profile_id!r}; leave id out")
    try:
        return Profile.model_validate({**data, "id": profile_id})
    except ValidationError as exc:
        problems = "\n  ".join(describe_errors(exc, data))
        raise ProfileError(f"{source} is not a valid profile:\n  {problems}") from None


def load_profile(path: Path) -> Profile:
    """The profile in ``path`` (``<id>.toml``)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"cannot read the profile {path}: {exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path} is not valid TOML: {exc}") from exc
    return parse_profile(data, path.stem, str(path))


def load_profiles(extra_dirs: Iterable[Path] = ()) -> dict[str, Profile]:
    """The shipped profiles, then those of ``extra_dirs`` (a later one of the same id wins)."""
    profiles = dict(shipped_profiles())
    for directory in extra_dirs:
        if not directory.is_dir():
            raise ProfileError(f"profile directory {directory} does not exist")
        for path in sorted(directory.glob("*.toml")):
            profile = load_profile(path)
            profiles[profile.id] = profile
    return profiles


def pick_profile(profiles: Mapping[str, Profile], profile_id: str,
                 utility: Utility | None = None) -> Profile:
    """Profile ``profile_id`` among ``profiles``, for meters of ``utility`` (if given);
    ProfileError saying why it will not do."""
    profile = profiles.get(profile_id)
    if profile is None:
        raise ProfileError(f"unknown profile {profile_id!r}; known: {', '.join(sorted(profiles))}")
    if utility is not None and utility not in profile.utilities:
        raise ProfileError(f"profile {profile.id} meters {', '.join(profile.utilities)}, "
                           f"not {utility}")
    return profile


@cache
def shipped_profiles() -> Mapping[str, Profile]:
    return {path.stem: load_profile(path) for path in sorted(SHIPPED.glob("*.toml"))}


def shipped_profile(profile_id: str) -> Profile:
    """A profile meterline ships; ProfileError naming the known ones if there is none."""
    profiles = shipped_profiles()
    try:
        return profiles[profile_id]
    except KeyError:
        raise ProfileError(
            f"unknown profile {profile_id!r}; shipped: {', '.join(sorted(profiles))}"
        ) from None
