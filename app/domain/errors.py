"""Domain errors: exceptions with a meaning, mapped to HTTP/CLI answers in one place."""


class DomainError(Exception):
    """Base class for errors the user can act on."""


class ContentError(DomainError):
    """The content graph is invalid. ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class InvalidParameters(DomainError):
    """BKT parameters out of range or degenerate."""


class NotFound(DomainError):
    """A referenced item does not exist (or is not visible to the caller).

    ``field`` names the request field that referenced it, when it came from a
    request body rather than the URL (then it is a 422, not a 404).
    """

    kind = "item"

    def __init__(self, item_id: str, field: str | None = None) -> None:
        self.item_id = item_id
        self.field = field
        super().__init__(f"Unknown {self.kind} {item_id!r}.")


class UnknownStudent(NotFound):
    kind = "student"


class UnknownExercise(NotFound):
    kind = "exercise"


class UnknownSkill(NotFound):
    kind = "skill"


class Conflict(DomainError):
    """The request contradicts what is stored (e.g. a reused client_response_id)."""


class UnknownClass(NotFound):
    kind = "class"


class UnknownApiKey(NotFound):
    kind = "API key"


class InvalidInput(DomainError):
    """Values that are well-formed but not acceptable (unknown attribute, value outside its list, ...)."""


class Forbidden(DomainError):
    """The caller's role may never do this (whoever the target is)."""
