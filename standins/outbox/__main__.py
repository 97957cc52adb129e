"""`python -m standins.outbox [list | show N | save N DIR | clear]`: the mails the local server has sent.

`save` writes the attachments of mail N (invoice PDFs, e-invoice XML) as files into DIR.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

from services.settings import SettingsError, load_settings


def _mails(directory: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standins.outbox", description=__doc__)
    parser.add_argument("command", nargs="?", default="list", choices=["list", "show", "save", "clear"])
    parser.add_argument("number", nargs="?", type=int, help="with show and save: the mail's number from the list")
    parser.add_argument("directory", nargs="?", type=Path, help="with save: where to write the attachments")
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
    elif args.command in ("show", "save"):
        if args.number is None or not 1 <= args.number <= len(mails):
            print(f"{args.command} needs a number from 1 to {len(mails)}", file=sys.stderr)
            return 2
        mail = mails[args.number - 1]
        if args.command == "save":
            return _save(mail, args.directory)
        print(f"From: {mail['from']}\nTo: {mail['to']}\nDate: {mail['sent_at']}\nSubject: {mail['subject']}")
        for attachment in mail.get("attachments") or []:
            print(f"Attachment: {attachment['name']} ({attachment['contentType']}, {attachment['size']} bytes)")
        print()
        print(mail["text"])
    else:
        if not mails:
            print(f"The outbox ({directory}) is empty.")
        for number, mail in enumerate(mails, 1):
            print(f"{number:4}  {mail['sent_at']}  {mail['to']:40}  {mail['subject']}")
            for attachment in mail.get("attachments") or []:
                print(f"{'':6}+ {attachment['name']} ({attachment['size']} bytes)")
    return 0


def _save(mail: dict, target: Path | None) -> int:
    attachments = mail.get("attachments") or []
    if target is None:
        print("save needs a directory to write the attachments to", file=sys.stderr)
        return 2
    if not attachments:
        print("this mail has no attachments", file=sys.stderr)
        return 1
    target.mkdir(parents=True, exist_ok=True)
    for attachment in attachments:
        # Only the file name: an attachment's name never chooses the directory.
        path = target / Path(attachment["name"]).name
        path.write_bytes(base64.b64decode(attachment["contentInBase64"]))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
