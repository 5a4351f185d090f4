"""Prompts that test whether the checklist score can be gamed, and pairs where one prompt is plainly
better than the other for the same task. The rubric tests assert on them and `make quality` reports
their scores, so both read the same cases."""

# (name, prompt): each must score under 50.
GAMING_CASES: list[tuple[str, str]] = [
    (
        "keyword salad",
        "Role context audience format JSON table bullet list step by step reason verify double-check "
        "examples for example constraints must always never only output format words sentences "
        "under 200 words purpose goal because so that.",
    ),
    (
        "scaffold around an empty task",
        "## Role\nYou are a knowledgeable, careful assistant.\n\n"
        "## Context\nThe aim is an answer the reader can act on without further questions.\n\n"
        "## Task\nDo it.\n\n"
        "## Constraints\n- If something needed is missing or unclear, say what and state the assumption "
        "you made.\n\n"
        "## Output format\nStructure the answer as: a one-line summary, the main part, then any caveats.\n"
        "Keep the answer under 300 words unless the task clearly needs more.",
    ),
    (
        "headings around nonsense",
        "## Role\nBlue the was of and.\n\n## Task\nPurple seven kitchen whenever.\n\n"
        "## Output format\nJSON table list.\n\n## Constraints\n- Always never only must.\n\n"
        "## Examples\nFor example: example.",
    ),
    (
        "filler around a vague task",
        "You are a world-class expert. Take a deep breath. This is very important to my career. "
        "Write something good about stuff. Be thorough, be concise, be detailed, be brief. "
        "Make it amazing and high quality. Do your best.",
    ),
]

CODE_REVIEW_PROSE = (
    "Review the pull request diff below as the senior engineer responsible for this payments service. "
    "Look first for correctness problems that could lose or double-charge money: race conditions around "
    "the idempotency key, unchecked errors from the ledger client, and rounding in currency conversion. "
    "Then note anything that makes the code hard to maintain. For each finding give the file and line, "
    "what can go wrong in production, and the smallest change that fixes it. If the diff looks correct, "
    "say so plainly rather than inventing problems. List findings most severe first, at most ten.\n\n"
    "<diff>\n{diff}\n</diff>"
)

# (name, better, worse): the better prompt must score higher than the worse one.
PAIRS: list[tuple[str, str, str]] = [
    (
        "specific beats vague (summary)",
        "Summarize the attached quarterly report for the board in five bullet points: revenue against "
        "plan, the two largest cost overruns with their causes, cash runway in months, and one decision "
        "the board must take. Use the report's own figures; say when a figure is missing.\n\n"
        "<report>\n{report}\n</report>",
        "Summarize this report.\n\n{report}",
    ),
    (
        "specific beats vague (email)",
        "Write a reply to the customer email below. The customer was charged twice for order {order_id}; "
        "apologise once, confirm the refund of the duplicate charge within 5 business days, and give the "
        "support number {phone}. Friendly and plain, under 120 words, signed by {agent_name}.\n\n"
        "<email>\n{email}\n</email>",
        "Write a good reply to this email, make it nice.\n\n{email}",
    ),
    (
        "a strong prose prompt beats its keyword-stuffed copy",
        CODE_REVIEW_PROSE,
        "## Role\nYou are a senior software engineer who writes correct, readable code.\n\n"
        "## Task\nReview the code. Think step by step. Verify and double-check. Format: JSON table bullet "
        "list. Constraints: must always never only. For example: example. Purpose: goal, because, so "
        "that. Under 300 words.\n\n<diff>\n{diff}\n</diff>",
    ),
    (
        "a strong prose prompt beats the scaffold around an empty task",
        CODE_REVIEW_PROSE,
        GAMING_CASES[1][1],
    ),
]
