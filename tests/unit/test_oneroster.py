"""The OneRoster CSV reader: both versions, every kind of problem (all reported at once, each with its file
and line), tolerance of BOMs, CRLF and unknown columns, and bundles written from random valid data reading
back equal."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.oneroster import (
    AcademicSession,
    Bundle,
    BundleProblems,
    Class,
    Course,
    Enrollment,
    Mode,
    Org,
    Role,
    User,
    files_of,
    read_bundle,
)
from tests.oneroster_support import write_bundle

MANIFEST_11 = (
    "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\nfile.academicSessions,bulk\n"
    "file.categories,absent\nfile.classes,bulk\nfile.courses,bulk\nfile.enrollments,bulk\nfile.orgs,bulk\n"
    "file.users,bulk\n"
)


def table(header: str, *rows: str) -> str:
    """A CSV file: the header (columns separated by spaces) and its rows."""
    return "\n".join([",".join(header.split()), *rows]) + "\n"


COMMON = "sourcedId status dateLastModified "
FILES_11 = {
    "orgs.csv": table(
        COMMON + "name type identifier parentSourcedId",
        "d1,,,North District,district,,",
        "org1,,,Hill School,school,HS,d1",
    ),
    "academicSessions.csv": table(
        COMMON + "title type startDate endDate parentSourcedId schoolYear",
        "term1,,,Fall,term,2024-09-01,2024-12-20,,2025",
    ),
    "courses.csv": table(
        COMMON + "schoolYearSourcedId title courseCode grades orgSourcedId subjects subjectCodes",
        "c1,,,term1,Maths,M7,07,org1,,",
    ),
    "classes.csv": table(
        COMMON + "title grades courseSourcedId classCode classType location schoolSourcedId termSourcedIds "
        "subjects subjectCodes periods",
        "k1,,,Maths 7B,07,c1,7B,scheduled,Room 4,org1,term1,,,",
    ),
    "users.csv": table(
        COMMON + "enabledUser orgSourcedIds role username userIds givenName familyName middleName identifier "
        "email sms phone agentSourcedIds grades password",
        "t1,,,true,org1,teacher,lee,,Tom,Lee,,,t.lee@hill.example,,,,,",
        's1,,,true,"org1,d1",student,ann,,Ann,Smith,,,ann@hill.example,,,,07,',
    ),
    "enrollments.csv": table(
        COMMON + "classSourcedId schoolSourcedId userSourcedId role primary beginDate endDate",
        "e1,,,k1,org1,t1,teacher,true,,",
        "e2,,,k1,org1,s1,student,false,2024-09-01,",
    ),
}
MANIFEST_12 = MANIFEST_11.replace("oneroster.version,1.1", "oneroster.version,1.2") + "file.roles,bulk\n"
FILES_12 = {
    **FILES_11,
    "users.csv": table(
        COMMON + "enabledUser username userIds givenName familyName middleName identifier email sms phone "
        "agentSourcedIds grades password userMasterIdentifier resourceSourcedIds preferredGivenName "
        "preferredMiddleName preferredFamilyName primaryOrgSourcedId pronouns",
        "t1,,,true,lee,,Tom,Lee,,,t.lee@hill.example,,,,,,,,,,,org1,",
        "s1,,,true,ann,,Ann,Smith,,,,,,,07,,,,,,,org1,",
    ),
    "roles.csv": table(
        COMMON + "userSourcedId roleType role beginDate endDate orgSourcedId userProfileSourcedId",
        "r1,,,t1,primary,teacher,,,org1,",
        "r2,,,s1,primary,student,,,org1,",
    ),
}


def zip_of(files: Mapping[str, str | bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text if isinstance(text, bytes) else text.encode("utf-8"))
    return out.getvalue()


def bundle_11(**changes: str) -> bytes:
    return zip_of({"manifest.csv": MANIFEST_11, **FILES_11, **changes})


def problems_of(data: bytes) -> list[str]:
    with pytest.raises(BundleProblems) as caught:
        read_bundle(data)
    return [str(p) for p in caught.value.problems]


def test_reads_a_1_1_bundle() -> None:
    bundle = read_bundle(bundle_11())
    assert bundle.version == "1.1"
    assert bundle.mode("users") is Mode.BULK and bundle.mode("roles") is Mode.ABSENT
    assert [o.type for o in bundle.orgs] == ["district", "school"]
    assert bundle.classes[0].title == "Maths 7B" and bundle.classes[0].term_sourced_ids == ("term1",)
    student = bundle.users[1]
    assert (student.role, student.org_sourced_ids, student.line) == ("student", ("org1", "d1"), 3)
    assert [(e.user_sourced_id, e.role, e.primary) for e in bundle.enrollments] == [
        ("t1", "teacher", "true"),
        ("s1", "student", "false"),
    ]


def test_reads_a_1_2_bundle_with_roles() -> None:
    bundle = read_bundle(zip_of({"manifest.csv": MANIFEST_12, **FILES_12}))
    assert bundle.version == "1.2"
    assert [u.role for u in bundle.users] == ["", ""]  # 1.2 keeps roles in roles.csv
    assert [(r.user_sourced_id, r.role) for r in bundle.roles] == [("t1", "teacher"), ("s1", "student")]
    assert bundle.users[0].org_sourced_ids == ("org1",)


def test_a_bom_crlf_and_unknown_columns_are_tolerated() -> None:
    files: dict[str, str | bytes] = {
        name: b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode() for name, text in FILES_11.items()
    }
    files["classes.csv"] = (
        b"sourcedId,status,dateLastModified,title,courseSourcedId,classType,schoolSourcedId,termSourcedIds,"
        b"classCode,metadata.room\r\nk1,,,Maths 7B,c1,scheduled,org1,term1,7B,4\r\n"
    )
    bundle = read_bundle(zip_of({"manifest.csv": "\ufeff" + MANIFEST_11.replace("\n", "\r\n"), **files}))
    assert bundle == read_bundle(bundle_11())


def test_every_bad_row_is_named_with_file_line_and_why_all_at_once() -> None:
    users = FILES_11["users.csv"].splitlines()
    enrollments = FILES_11["enrollments.csv"].splitlines()
    data = bundle_11(
        **{
            "users.csv": "\n".join(
                [
                    *users,
                    "u3,,,true,org1,wizard,x,,X,Y,,,,,,,,",  # bad role
                    "u4,,,true,org1,student,,,A,B,,,,,,,,",  # missing username
                    "u5,deleted,,true,org1,student,z,,A,B,,,,,,,,",  # bad status
                    "u6,,,maybe,org1,student,q,,A,B,,,,,,,,",  # bad flag
                    "u7,,,true,org9,student,q,,A,B,,,,,,,,",  # unknown org
                    "t1,,,true,org1,teacher,lee2,,T,L,,,,,,,,",  # repeated sourcedId
                ]
            ),
            "enrollments.csv": "\n".join(
                [
                    *enrollments,
                    "e3,,,k9,org1,s1,student,,,",  # unknown class
                    "e4,,,k1,org1,s1,student,,2024-13-01,",  # bad date
                    "e5,,,k1,org1,s1,student,,,,extra",  # a cell too many
                ]
            ),
        }
    )
    assert problems_of(data) == [
        "enrollments.csv:4: unknown reference classSourcedId 'k9' (not in classes.csv)",
        "enrollments.csv:5: bad date '2024-13-01' in beginDate (YYYY-MM-DD)",
        "enrollments.csv:6: 11 values, but the header has 10 columns",
        "users.csv:4: bad role 'wizard' in role (one of administrator, aide, guardian, parent, proctor, "
        "relative, student, teacher)",
        "users.csv:5: missing required field username",
        "users.csv:6: bad status 'deleted' (one of active, tobedeleted, inactive)",
        "users.csv:7: bad value 'maybe' in enabledUser (one of true, false)",
        "users.csv:8: unknown reference orgSourcedIds 'org9' (not in orgs.csv)",
        "users.csv:9: sourcedId 't1' repeats line 2",
    ]


def test_1_2_has_no_inactive_status_and_its_own_roles() -> None:
    roles = (
        FILES_12["roles.csv"]
        + "r3,inactive,,t1,primary,teacher,,,org1,\nr4,,,t1,main,districtAdministrator,,,org1,\n"
    )
    data = zip_of({"manifest.csv": MANIFEST_12, **FILES_12, "roles.csv": roles})
    assert problems_of(data) == [
        "roles.csv:4: bad status 'inactive' (one of active, tobedeleted)",
        "roles.csv:5: bad value 'main' in roleType (one of primary, secondary)",
    ]


def test_delta_rows_need_status_and_date_and_may_refer_to_rows_sent_before() -> None:
    manifest = MANIFEST_11.replace("file.enrollments,bulk", "file.enrollments,delta").replace(
        "file.users,bulk", "file.users,delta"
    )
    enrollments = (
        "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,"
        "endDate\n"
        "e2,tobedeleted,2024-10-01T08:00:00Z,k1,org1,s1,student,,,\n"
        "e9,active,2024-10-01T08:00:00.123Z,k1,org1,s-earlier,student,,,\n"
        "e10,,,k1,org1,s1,student,,,\n"
        "e11,active,yesterday,k1,org1,s1,student,,,\n"
    )
    users = (
        FILES_11["users.csv"]
        .replace("t1,,,", "t1,active,2024-10-01T08:00:00+02:00,")
        .replace("s1,,,", "s1,active,2024-10-01T08:00:00Z,")
    )
    data = zip_of({"manifest.csv": manifest, **FILES_11, "enrollments.csv": enrollments, "users.csv": users})
    assert problems_of(data) == [
        "enrollments.csv:4: missing required field status (a delta file gives it on every row)",
        "enrollments.csv:4: missing required field dateLastModified (a delta file gives it on every row)",
        "enrollments.csv:5: bad date 'yesterday' in dateLastModified (an ISO 8601 date and time, e.g. "
        "2024-09-01T08:00:00Z)",
    ]
    good = enrollments.rsplit("e10", 1)[0]
    bundle = read_bundle(
        zip_of({"manifest.csv": manifest, **FILES_11, "enrollments.csv": good, "users.csv": users})
    )
    assert [e.deleted for e in bundle.enrollments] == [True, False]


def test_files_and_columns_the_manifest_promises() -> None:
    assert problems_of(bundle_11(**{"courses.csv": "sourcedId,title\nc1,Maths\n"})) == [
        "courses.csv:1: missing column(s) orgSourcedId"
    ]
    files = {k: v for k, v in FILES_11.items() if k != "courses.csv"}
    assert problems_of(zip_of({"manifest.csv": MANIFEST_11, **files})) == [
        "courses.csv: missing from the zip (manifest.csv says file.courses is bulk)"
    ]
    absent = MANIFEST_11.replace("file.courses,bulk", "file.courses,absent")
    assert problems_of(zip_of({"manifest.csv": absent, **FILES_11})) == [
        "courses.csv: is in the zip but manifest.csv says file.courses is absent"
    ]
    header_only = FILES_11["courses.csv"].splitlines()[0] + "\n"
    assert "courses.csv: no data rows" in problems_of(bundle_11(**{"courses.csv": header_only}))[0]


def test_the_manifest_is_checked_first() -> None:
    assert problems_of(b"not a zip") == ["bundle: not a zip file"]
    assert problems_of(zip_of(FILES_11)) == ["bundle: no manifest.csv at the top of the zip"]
    assert problems_of(zip_of({"manifest.csv": MANIFEST_11.replace("1.1", "1.0"), **FILES_11})) == [
        "manifest.csv:3: oneroster.version must be one of 1.1, 1.2, not '1.0'"
    ]
    broken = MANIFEST_11.replace("file.users,bulk", "file.users,full").replace("file.orgs,bulk\n", "")
    assert problems_of(zip_of({"manifest.csv": broken, **FILES_11})) == [
        "manifest.csv: missing required property file.orgs",
        "manifest.csv:9: file.users must be absent, bulk or delta, not 'full'",
    ]
    assert problems_of(zip_of({"manifest.csv": "a,b\n", **FILES_11})) == [
        "manifest.csv:1: the header must be propertyName,value"
    ]


def test_text_that_is_not_utf8_or_not_csv() -> None:
    latin = FILES_11["orgs.csv"].replace("Hill", "H\xefll").encode("latin-1")
    assert problems_of(bundle_11(**{"orgs.csv": latin}))[0].startswith("orgs.csv: not UTF-8 text")  # type: ignore[arg-type]
    quoted = FILES_11["orgs.csv"] + 'x1,,,"Unclosed,school,,\n'
    assert problems_of(bundle_11(**{"orgs.csv": quoted}))[0].startswith("orgs.csv:")


# --- property: random valid bundles read back equal ---------------------------------------------------------

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12)
words = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters=","),
        min_size=1,
        max_size=20,
    )
    .map(str.strip)
    .filter(bool)
)
texts = st.one_of(st.just(""), words, st.text(alphabet='ab ,"\n', min_size=1, max_size=8).map(str.strip))
days = st.dates().map(lambda d: d.isoformat()).filter(lambda d: len(d) == 10)


@st.composite
def bundles(draw: st.DrawFn) -> Bundle:
    version = draw(st.sampled_from(["1.1", "1.2"]))
    mode = draw(st.sampled_from([Mode.BULK, Mode.DELTA]))
    delta = mode is Mode.DELTA
    statuses = ["active", "tobedeleted"] if delta else ["", "active"]

    def meta() -> tuple[str, str]:
        status = draw(st.sampled_from(statuses))
        return status, (
            "2024-09-01T08:00:00Z" if delta else draw(st.sampled_from(["", "2024-09-01T08:00:00Z"]))
        )

    unique = draw(st.lists(ids, min_size=7, max_size=30, unique=True))
    org_ids, rest = unique[:2], unique[2:]
    orgs = tuple(
        Org(
            sid,
            *meta(),
            line=0,
            name=draw(words),
            type=draw(st.sampled_from(["school", "district"])),
            identifier=draw(texts),
            parent_sourced_id="",
        )
        for sid in org_ids
    )
    term = AcademicSession(
        rest[0],
        *meta(),
        line=0,
        title=draw(words),
        type="term",
        start_date=draw(days),
        end_date=draw(days),
        parent_sourced_id="",
        school_year="2025",
    )
    course = Course(
        rest[1],
        *meta(),
        line=0,
        school_year_sourced_id=draw(st.sampled_from(["", term.sourced_id])),
        title=draw(words),
        course_code=draw(texts),
        org_sourced_id=org_ids[0],
    )
    class_ids, user_ids = rest[2:4], rest[4:]
    classes = tuple(
        Class(
            sid,
            *meta(),
            line=0,
            title=draw(words),
            course_sourced_id=course.sourced_id,
            class_code=draw(texts),
            class_type=draw(st.sampled_from(["homeroom", "scheduled"])),
            school_sourced_id=org_ids[0],
            term_sourced_ids=(term.sourced_id,),
        )
        for sid in class_ids
    )
    roles_of = {sid: draw(st.sampled_from(["teacher", "student", "parent"])) for sid in user_ids}
    users = tuple(
        User(
            sid,
            *meta(),
            line=0,
            enabled_user=draw(st.sampled_from(["true", "false"])),
            username=draw(words),
            given_name=draw(words),
            family_name=draw(words),
            email=draw(texts),
            role=roles_of[sid] if version == "1.1" else "",
            org_sourced_ids=tuple(
                draw(st.lists(st.sampled_from(org_ids), min_size=1, max_size=2, unique=True))
            )
            if version == "1.1"
            else tuple(draw(st.lists(st.sampled_from(org_ids), max_size=1))),
        )
        for sid in user_ids
    )
    roles = (
        tuple(
            Role(
                f"role-{sid}",
                *meta(),
                line=0,
                user_sourced_id=sid,
                role_type="primary",
                role=roles_of[sid],
                org_sourced_id=org_ids[0],
            )
            for sid in user_ids
        )
        if version == "1.2"
        else ()
    )
    enrollments = tuple(
        Enrollment(
            f"enr-{n}",
            *meta(),
            line=0,
            class_sourced_id=draw(st.sampled_from(class_ids)),
            school_sourced_id=org_ids[0],
            user_sourced_id=sid,
            role=draw(st.sampled_from(["teacher", "student"])),
            primary=draw(st.sampled_from(["", "true", "false"])),
            begin_date=draw(st.one_of(st.just(""), days)),
            end_date="",
        )
        for n, sid in enumerate(user_ids)
    )
    modes = {name: mode for name in files_of(version)}
    return Bundle(version, modes, orgs, (term,), (course,), classes, users, roles, enrollments)


@given(bundles(), st.booleans(), st.booleans())
def test_a_bundle_written_from_random_valid_data_reads_back_equal(
    bundle: Bundle, bom: bool, crlf: bool
) -> None:
    assert read_bundle(write_bundle(bundle, bom=bom, crlf=crlf)) == bundle


def test_a_bundle_that_unpacks_to_too_much_is_refused_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    data = bundle_11()
    unpacked = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
    monkeypatch.setattr("app.domain.oneroster.MAX_UNPACKED_BYTES", unpacked - 1)
    assert problems_of(data) == [
        f"bundle: unpacks to {unpacked} bytes, more than {unpacked - 1} (a zip bomb?)"
    ]
