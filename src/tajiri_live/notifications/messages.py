"""What a notification says, in Swahili (the default) and English, and where it leads."""

from __future__ import annotations

SCHEDULED = "scheduled"
STARTING_SOON = "starting_soon"
NOW_LIVE = "now_live"
ENDED = "ended"
REMINDER = "reminder"

# Without an explicit preference: starting_soon is opt-in, the rest are on.
DEFAULT_ENABLED = {
    SCHEDULED: True,
    STARTING_SOON: False,
    NOW_LIVE: True,
    ENDED: True,
    REMINDER: True,
}

# (title, body) per language and type; {name} is the streamer, {title} the stream.
TEXTS: dict[str, dict[str, tuple[str, str]]] = {
    "sw": {
        SCHEDULED: ("Matangazo mapya yamepangwa", "{name} atakuwa mubashara: {title}"),
        STARTING_SOON: ("Yanaanza hivi punde", "{name} anaanza muda si mrefu: {title}"),
        NOW_LIVE: ("{name} yuko mubashara sasa!", "Jiunge sasa: {title}"),
        ENDED: ("Matangazo yameisha", "Asante kwa kutazama {title}"),
        REMINDER: ("Usikose!", "{name} anakukumbusha: {title}"),
    },
    "en": {
        SCHEDULED: ("New live stream scheduled", "{name} will be live: {title}"),
        STARTING_SOON: ("Starting soon", "{name} is going live shortly: {title}"),
        NOW_LIVE: ("{name} is live now!", "Join now: {title}"),
        ENDED: ("Stream ended", "Thanks for watching {title}"),
        REMINDER: ("Don't miss it!", "{name} reminds you: {title}"),
    },
}

# The screen the app opens for each type.
SCREENS = {
    SCHEDULED: "standby",
    STARTING_SOON: "standby",
    NOW_LIVE: "live",
    ENDED: "replay",
    REMINDER: "standby",
}


def language(locale: str | None) -> str:
    """English for an English locale (`en`, `en-GB`, `en_US`), Swahili otherwise."""
    return "en" if (locale or "").lower().replace("_", "-").split("-")[0] == "en" else "sw"


def render(kind: str, locale: str | None, *, name: str, title: str) -> tuple[str, str]:
    head, body = TEXTS[language(locale)][kind]
    return head.format(name=name, title=title), body.format(name=name, title=title)


def payload(kind: str, *, stream_id: int, has_replay: bool) -> dict[str, str]:
    """FCM `data`: strings only; tells the app which screen to open for which stream."""
    screen = SCREENS[kind]
    if kind == ENDED and not has_replay:
        screen = "summary"
    return {"type": kind, "stream_id": str(stream_id), "screen": screen}
