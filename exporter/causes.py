"""One line of plain language per key and probe: the likely cause, the root cause first.

The status page and `check` both say it. When OpenAI rejects a key whose source has format
findings (quotes, spaces, a CR...), the finding is named first: OpenAI received those characters
as part of the key, so fixing them is the likely fix, whatever the rejection says.
"""

from __future__ import annotations

from exporter.classify import RESULTS, Result, Validity
from exporter.keys import KeySource, SourceKind

# Findings that change what OpenAI receives, most telling first; each says what is wrong with
# "the value in <where>". The others (.env layout, file mode) follow.
_FINDINGS: dict[str, str] = {
    "surrounding_quotes": "{value} is wrapped in quotes: OpenAI receives them",
    "leading_whitespace": "{value} starts with a space or tab: OpenAI receives it",
    "trailing_whitespace": "{value} ends with a space, tab or CR: OpenAI receives it",
    "line_break": "{value} contains a line break: it cannot be sent in a header",
    "inner_whitespace": "{value} has a space inside it: two values pasted together?",
    "non_ascii": "{value} contains non-ASCII characters (a look-alike letter pasted in?)",
    "unexpected_characters": "{value} contains characters no OpenAI key has",
    "implausible_length": "{value} has an unusual length: cut off, or pasted twice?",
    "unknown_prefix": "{value} does not start like an OpenAI key (sk-proj-, sk-svcacct-, sk-)",
    "openai_key_for_azure": "provider is azure but {value} starts with sk-: an OpenAI key, "
    "which an Azure OpenAI resource refuses",
    "dotenv_quoted_value": "{value} is quoted: this reader strips the quotes, a stricter one "
    "(docker --env-file) sends them",
    "dotenv_crlf": "{file} has Windows line endings: a CR ends the line",
    "dotenv_spaces_around_equals": "the line in {file} has spaces around '='",
    "dotenv_duplicate_variable": "{variable} is set more than once in {file}: the last one wins",
    "empty": "{value} is empty",
    "missing": "no key could be read from {where}",
    "file_readable_by_others": "{file} is readable by other users: chmod 600 it",
}
# Not a reason for OpenAI to refuse the key: never named as the root cause of a rejection.
_NOT_A_CAUSE = frozenset({"file_readable_by_others"})


def _where(source: KeySource | None) -> dict[str, str]:
    if source is None:
        return {"value": "the key", "file": "its file", "variable": "its variable", "where": "it"}
    if source.kind is SourceKind.ENV:
        where = f"environment variable {source.location}"
        value = f"the value of {where}"
        return {"value": value, "file": where, "variable": source.location, "where": where}
    value = f"the value in {source.location}"
    return {
        "value": value,
        "file": source.location,
        "variable": source.dotenv_var,
        "where": source.location,
    }


def finding_sentence(issue: str, source: KeySource | None) -> str:
    """What a lint finding means, in one line naming where the key comes from."""
    template = _FINDINGS.get(issue, "format finding " + issue)
    return template.format(**_where(source))


def ranked_findings(issues: tuple[str, ...] | list[str]) -> list[str]:
    """Findings in the order a person should look at them: what OpenAI receives first."""
    order = {issue: rank for rank, issue in enumerate(_FINDINGS)}
    return sorted(issues, key=lambda issue: order.get(issue, len(order)))


def root_finding(result: Result, issues: tuple[str, ...] | list[str]) -> str | None:
    """The finding to name first when `result` says the key itself is refused, if any."""
    if RESULTS[result].validity is not Validity.INVALID:
        return None
    for issue in ranked_findings(issues):
        if issue not in _NOT_A_CAUSE:
            return issue
    return None


def plain_cause(
    result: Result, issues: tuple[str, ...] | list[str], source: KeySource | None
) -> str:
    """One line a tired person can act on: the root cause first, then what OpenAI said."""
    text = RESULTS[result].summary
    finding = root_finding(result, issues)
    if finding is not None:
        sentence = finding_sentence(finding, source)
        # Missing or unsendable: the finding says it all; a rejection: the finding, then it.
        missing = result in (Result.KEY_MISSING, Result.KEY_MALFORMED)
        text = sentence if missing else f"{sentence}; {text}"
    return text[:1].upper() + text[1:]
