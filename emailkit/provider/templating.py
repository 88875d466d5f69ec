"""Server-side templates: Jinja2 in its sandbox, with every variable required.

A template is stored once (subject + body); a send names it and passes only variables
(claim C12: the app stays small, the markup lives with the provider). Rendering uses
`jinja2.sandbox.SandboxedEnvironment` (templates cannot reach Python internals) with
`StrictUndefined` (a missing variable is an error naming it, never an empty string).
HTML bodies autoescape their variables; plain-text bodies and subjects do not.

>>> render("Hi {{ name }}", "<p>Hello {{ name }}</p>", False, {"name": "<Ann>"})
('Hi <Ann>', '<p>Hello &lt;Ann&gt;</p>')
"""

from __future__ import annotations

import re
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from emailkit.errors import InvalidInput

__all__ = ["check", "render"]

_HTML = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
_TEXT = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_UNDEFINED = re.compile(r"'([^']+)' is undefined")
_NO_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'")


def check(subject: str, body: str, is_plaintext: bool) -> None:
    """Compile both parts; raise `InvalidInput` naming the part and line of a syntax error."""
    for field, env, text in (("subject", _TEXT, subject), ("body", _TEXT if is_plaintext else _HTML, body)):
        try:
            env.parse(text)
        except TemplateSyntaxError as exc:
            raise InvalidInput(field, f"template syntax error on line {exc.lineno}: {exc.message}",
                               fix="correct the Jinja2 syntax ({{ variable }}, {% if %}…{% endif %})") from None


def render(subject: str, body: str, is_plaintext: bool, variables: dict[str, Any]) -> tuple[str, str]:
    """(subject, body) rendered with `variables`; raises `InvalidInput` for a missing variable."""
    out = []
    for part, env, text in (("subject", _TEXT, subject), ("body", _TEXT if is_plaintext else _HTML, body)):
        try:
            out.append(env.from_string(text).render(**variables))
        except UndefinedError as exc:
            message = str(exc.message or exc)
            match = _UNDEFINED.search(message) or _NO_ATTRIBUTE.search(message)
            name = match.group(1) if match else "?"
            raise InvalidInput(f"template.variables.{name}", f"the template's {part} uses {name!r}, which was not given",
                               fix=f'add "{name}" to template.variables') from None
        except SecurityError as exc:
            raise InvalidInput("template", f"the template's {part} tried something unsafe: {exc}",
                               fix="use only variables, filters and loops in templates") from None
        except TemplateSyntaxError as exc:
            raise InvalidInput("template", f"the template's {part} does not compile: {exc.message}",
                               fix="correct the template") from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise InvalidInput("template.variables", f"rendering the template's {part} failed: {exc}",
                               fix="pass variables of the types the template expects") from None
    return out[0], out[1]
