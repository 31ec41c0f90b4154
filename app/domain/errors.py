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

    ``field`` names the request field that referenced it, when it came from a request body rather than
    the URL. Either way it is a 404 (an id that names nothing: the request is well formed, the thing is not
    there); a body's field is named in the answer's ``errors``.
    """

    kind = "item"

    def __init__(self, item_id: str, field: str | None = None) -> None:
        self.item_id = item_id
        self.field = field
        super().__init__(f"Unknown {self.kind} {item_id!r}.")


class UnknownStudent(NotFound):
    kind = "student"


class UnknownStudents(UnknownStudent):
    """Students named in a request body that are not students of the caller's school: a 404 naming
    ``field`` whose message names the first few (the request is refused as a whole)."""

    def __init__(self, item_ids: list[str], field: str, message: str) -> None:
        self.item_ids = item_ids
        self.item_id = item_ids[0]
        self.field = field
        DomainError.__init__(self, message)


class NotInClass(NotFound):
    """The student is not a member of the class (whether or not the student exists)."""

    kind = "class member"

    def __init__(self, student_id: str, class_id: int) -> None:
        self.item_id = student_id
        self.field = None
        self.class_id = class_id
        DomainError.__init__(self, f"Student {student_id!r} is not in class {class_id}.")


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
