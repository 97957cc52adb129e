"""Move messages from `<queue>-poison` back to `<queue>` so the Functions host retries them.

The message text is copied unchanged (it is already base64, as the host expects), then deleted from the
poison queue. Safe to replay: Stripe events are applied once per event id, e-mails are sent once per
mail id. Signs in with your Azure CLI / azd account (needs Storage Queue Data Contributor, which the
template grants to AZURE_PRINCIPAL_ID). Operator guide: docs/operations.md, "Replaying a poisoned message".

    .venv/bin/python scripts/replay_poison.py --account <storage account> --queue stripe-events --list
    .venv/bin/python scripts/replay_poison.py --account <storage account> --queue stripe-events --id <message id>
    .venv/bin/python scripts/replay_poison.py --account <storage account> --queue outbound-email --all
    (locally: --connection-string "$AzureWebJobsStorage" instead of --account)
"""

from __future__ import annotations

import argparse
import base64
import sys

from azure.storage.queue import QueueClient

QUEUES = ("stripe-events", "outbound-email")


def _client(args: argparse.Namespace, queue: str) -> QueueClient:
    # No encode/decode policy: the text moves byte for byte, whatever encoding the host uses.
    if args.connection_string:
        return QueueClient.from_connection_string(args.connection_string, queue)
    from azure.identity import DefaultAzureCredential

    return QueueClient(f"https://{args.account}.queue.core.windows.net", queue, credential=DefaultAzureCredential())


def _preview(content: str) -> str:
    try:
        text = base64.b64decode(content, validate=True).decode("utf-8")
    except ValueError:
        text = content
    return text[:160].replace("\n", " ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--account", help="storage account name (AZURE_STORAGE_ACCOUNT_NAME in azd env)")
    where.add_argument("--connection-string", help="for Azurite in local development")
    parser.add_argument("--queue", required=True, choices=QUEUES, help="the main queue; its -poison queue is read")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="show what waits in the poison queue")
    what.add_argument("--id", help="replay the message with this id")
    what.add_argument("--all", action="store_true", help="replay every message in the poison queue")
    args = parser.parse_args(argv)

    poison, target = _client(args, f"{args.queue}-poison"), _client(args, args.queue)
    if args.list:
        for peeked in poison.peek_messages(max_messages=32):
            print(f"{peeked.id}  inserted {peeked.inserted_on:%Y-%m-%d %H:%M}Z  {_preview(peeked.content)}")
        return 0

    moved = 0
    seen: set[str] = set()
    while True:
        # One at a time, invisible for 5 minutes while it is copied: a crash half-way leaves the message in
        # the poison queue (never lost), and nothing else is held back when we stop early.
        message = poison.receive_message(visibility_timeout=300)
        if message is None:
            break
        if message.id in seen or (args.id and message.id != args.id):
            poison.update_message(message, visibility_timeout=0)  # not this one: visible again at once
            if message.id in seen:  # came round again: every message has been looked at
                break
            seen.add(message.id)
            continue
        target.send_message(message.content)
        poison.delete_message(message.id, message.pop_receipt)
        moved += 1
        print(f"replayed {message.id} to {args.queue}")
        if args.id:
            break
    if args.id and not moved:
        print(f"no message {args.id} in {args.queue}-poison (use --list)", file=sys.stderr)
        return 1
    print(f"{moved} message(s) replayed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
