"""Seeded people, courses and lessons that completion records point at."""

import random
import unicodedata
from dataclasses import dataclass
from functools import cached_property

# The first people are fixed so tests can rely on non-ASCII names being present.
_FIXED = [("Zoë", "Ångström"), ("José", "Núñez"), ("雷", "李")]
_FIRST = [
    "Ana",
    "Björn",
    "Chloé",
    "Dmitri",
    "Émilie",
    "Farah",
    "Gökhan",
    "Hannah",
    "Ingrid",
    "Jürgen",
    "Kwame",
    "Łukasz",
    "Mei",
    "Nuño",
    "Øyvind",
    "Priya",
    "Raúl",
    "Siobhán",
    "Thandiwe",
    "Uxía",
    "Vikram",
    "Wen",
    "Yuki",
    "Zoltán",
    "Liam",
    "Emma",
    "Noah",
    "Olivia",
]
_LAST = [
    "Müller",
    "O'Brien",
    "Dvořák",
    "Nakamura",
    "Smith",
    "García",
    "Kowalski",
    "Nguyễn",
    "Østergaard",
    "Papadopoulos",
    "Çelik",
    "Fernández",
    "Johansson",
    "Singh",
    "Wójcik",
    "Brown",
    "Schäfer",
    "Ndlovu",
    "Rossi",
    "Lefèvre",
    "Kim",
    "Haddad",
]
_CJK_LAST = ["王", "张", "刘", "陈"]
_CJK_FIRST = ["伟", "芳", "娜", "敏"]
_COMPANIES = [
    "Acme Coworking Ltd",
    "Nordlys AS",
    "Café Büro GmbH",
    "Estudio Núñez SL",
    "Blue Harbor Inc.",
    "北京创新空间",
    "Société Générale de Design",
]
_TEAMS = ["Design", "Product", "Sales", "Marketing", "Engineering", "Operations", "Finance"]
_COURSES = [
    "Onboarding",
    "Fire Safety",
    "Data Protection (GDPR)",
    "Sécurité incendie",
    "Leadership Basics",
    "Anti-Bribery",
    "First Aid",
    "Excel für Einsteiger",
    "Workplace Ergonomics",
    "Customer Care",
    "Information Security",
    "日本語ビジネス入門",
]
_CONTENT_TYPES = ["VIDEO", "DOCUMENT", "QUIZ", "SCORM", "ASSESSMENT"]
# Nexudus courses renamed after their lessons were written: a lesson title keeps the old name.
_RENAMED = {"Fire Safety": "Fire Safety and Evacuation", "First Aid": "First Aid at Work"}


PEOPLE = 300
# With `nexudus_member_removed`, this enrolment (its person is also member 99) leaves its course.
MEMBER_REMOVED = 399


@dataclass(frozen=True, slots=True)
class Person:
    first_name: str
    last_name: str
    full_name: str
    email: str


@dataclass(frozen=True, slots=True)
class Course:
    id: str
    remote_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Content:
    id: str
    remote_id: str
    title: str
    type: str
    course: str


@dataclass(frozen=True, slots=True)
class NexudusCourse:
    id: int
    title: str  # today's title; its lessons may carry an older one
    lessons: tuple[int, ...]  # positions in Catalog.lessons


@dataclass(frozen=True, slots=True)
class Member:
    """A Nexudus CourseMember: one person's enrolment in one course."""

    id: int
    person: Person
    company: str | None
    teams: str | None
    coworker_id: int = 0
    course: int = 0  # position in Catalog.nexudus_courses


def uuid4_from(rng: random.Random) -> str:
    value = (rng.getrandbits(128) & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC << 60) | (0x8 << 60)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


def _person(rng: random.Random, index: int) -> Person:
    if index < len(_FIXED):
        first, last = _FIXED[index]
    elif rng.random() < 0.08:
        first, last = rng.choice(_CJK_FIRST), rng.choice(_CJK_LAST)
    else:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
    cjk = not _ascii_slug(last)
    full = f"{last}{first}" if cjk else f"{first} {last}"
    local = f"{_ascii_slug(first)}.{_ascii_slug(last)}" if not cjk else "user"
    return Person(first, last, full, f"{local}{index}@example.com")


@dataclass(frozen=True)
class Catalog:
    people: tuple[Person, ...]
    user_ids: tuple[str, ...]  # Bindbee user id of people[i]
    courses: tuple[Course, ...]
    contents: tuple[Content, ...]
    lessons: tuple[tuple[int, str], ...]  # Nexudus (CourseLessonId, title)
    members: tuple[Member, ...]
    nexudus_courses: tuple[NexudusCourse, ...] = ()

    def lesson_of(self, lesson: int, member: int) -> int:
        """The lesson a Nexudus record completes: the `lesson`-th pick among its member's course's lessons."""
        choices = self.nexudus_courses[self.members[member].course].lessons
        return choices[lesson % len(choices)]

    @cached_property
    def course_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.courses)

    @cached_property
    def content_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.contents)


def build_catalog(seed: int) -> Catalog:
    rng = random.Random(f"{seed}:catalog")
    people = tuple(_person(rng, i) for i in range(PEOPLE))
    user_ids = tuple(uuid4_from(rng) for _ in people)
    courses = tuple(
        Course(uuid4_from(rng), f"CRS-{1000 + i}", f"{_COURSES[i % len(_COURSES)]} {i // len(_COURSES) + 1}")
        for i in range(36)
    )
    contents = tuple(
        Content(
            uuid4_from(rng),
            f"CNT-{5000 + i}",
            f"{courses[i % 36].name} — part {i // 36 + 1}",
            rng.choice(_CONTENT_TYPES),
            courses[i % 36].id,
        )
        for i in range(108)
    )
    lessons = tuple(
        (4_100_000 + 17 * i, f"{_COURSES[i % len(_COURSES)]}: lesson {i // len(_COURSES) + 1}") for i in range(80)
    )
    nexudus_courses = tuple(
        NexudusCourse(3_300_000 + 7 * c, _RENAMED.get(name, name), tuple(range(c, len(lessons), len(_COURSES))))
        for c, name in enumerate(_COURSES)
    )
    members = tuple(
        Member(
            5_200_000 + 13 * i,
            people[i % len(people)],
            rng.choice(_COMPANIES) if rng.random() < 0.85 else None,
            ", ".join(rng.sample(_TEAMS, rng.randint(1, 3))) if rng.random() < 0.7 else None,
            coworker_id=6_100_000 + 11 * (i % len(people)),
            # A person's second enrolment is in another course (i and i + 300 differ by one course).
            course=(i + i // len(people)) % len(nexudus_courses),
        )
        for i in range(400)
    )
    return Catalog(people, user_ids, courses, contents, lessons, members, nexudus_courses)
