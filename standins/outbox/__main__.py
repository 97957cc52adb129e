"""`python -m standins.outbox [list | show N | clear]`: the mails the local server has sent."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.settings import SettingsError, load_settings


def _mails(directory: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standins.outbox", description=__doc__)
    parser.add_argument("command", nargs="?", default="list", choices=["list", "show", "clear"])
    parser.add_argument("number", nargs="?", type=int, help="with show: the mail's number from the list")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not settings.is_local:
        print("The outbox exists only in local development (APP_ENVIRONMENT=local).", file=sys.stderr)
        return 2
    directory = Path(settings.mail_outbox_dir)
    mails = _mails(directory) if directory.is_dir() else []
    if args.command == "clear":
        for path in directory.glob("*.json"):
            path.unlink()
        print(f"removed {len(mails)} mails")
    elif args.command == "show":
        if args.number is None or not 1 <= args.number <= len(mails):
            print(f"show needs a number from 1 to {len(mails)}", file=sys.stderr)
            return 2
        mail = mails[args.number - 1]
        print(f"From: {mail['from']}\nTo: {mail['to']}\nDate: {mail['sent_at']}\nSubject: {mail['subject']}\n")
        print(mail["text"])
    else:
        if not mails:
            print(f"The outbox ({directory}) is empty.")
        for number, mail in enumerate(mails, 1):
            print(f"{number:4}  {mail['sent_at']}  {mail['to']:40}  {mail['subject']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
