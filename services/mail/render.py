"""Rendering a message from its templates: plain text and HTML, English and German.

`templates/mail/<template>.<language>.txt` starts with a `Subject:` line; the `.html` file extends the
language's layout, which carries the support contact in every mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.mail.message import Attachment, MailMessage

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates" / "mail"


@dataclass(frozen=True)
class RenderedMail:
    to: str
    subject: str
    text: str
    html: str
    attachments: tuple[Attachment, ...] = ()


@lru_cache(maxsize=1)
def _environment() -> Environment:
    # StrictUndefined: a template that needs a parameter the sender forgot fails loudly in tests.
    return Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(message: MailMessage, *, support_email: str, base_url: str,
           attachments: tuple[Attachment, ...] = ()) -> RenderedMail:
    env = _environment()
    # `attachments`: the names of the files that go with this mail, so its text names exactly those.
    context = {**message.params, "support_email": support_email, "base_url": base_url, "to": message.to,
               "attachments": [a.filename for a in attachments]}
    text = env.get_template(f"{message.template}.{message.language}.txt").render(context)
    first, _, body = text.partition("\n")
    if not first.startswith("Subject:"):
        raise ValueError(f"{message.template}.{message.language}.txt must start with a 'Subject:' line")
    html = env.get_template(f"{message.template}.{message.language}.html").render(context)
    subject = first.removeprefix("Subject:").strip()
    return RenderedMail(to=message.to, subject=subject, text=body.strip() + "\n", html=html, attachments=attachments)
