"""A small server knowledge base for retrieval tests: many look-alike error codes (where only
exact matching tells them apart) and plain-language pages (where only meaning does)."""

from __future__ import annotations

from pathlib import Path

CODES = ["QX-4471", "QX-4417", "QX-7441", "QX-1744", "QX-4714", "QX-7144", "QX-1474", "QX-4147"]
PROBLEMS = [
    "the license server rejected the token",
    "the upload exceeded the quota",
    "the webhook signature did not match",
    "the voice region is unavailable",
    "the backup archive is corrupted",
    "the role hierarchy blocks the change",
    "the invite link has expired",
    "the rate limit was hit",
]

PAGES = {
    "password.md": "# Account recovery\n\nTo reset your password, open Settings and choose "
    "'Forgot credentials'. A reset link is emailed to you within five minutes.",
    "raids.md": "# Raid schedule\n\nGuild raids start every Friday at 21:00 server time. Sign up "
    "in the #raids channel before Thursday evening.",
    "music.md": "# Music bot\n\nUse /play followed by a song name to queue music in a voice "
    "channel. Only DJs may skip tracks.",
    "rules.md": "# Server rules\n\nBe kind. No spam, no advertising, no NSFW content outside "
    "the marked channels. Moderators may mute rule breakers.",
}


def write_corpus(root: Path) -> Path:
    for name, text in PAGES.items():
        (root / name).write_text(text)
    for code, problem in zip(CODES, PROBLEMS):
        (root / f"error-{code}.md").write_text(
            f"# Error {code}\n\nError {code} means {problem}. Contact an admin with the error "
            "code and the time it happened."
        )
    return root
