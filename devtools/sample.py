"""Sample dev data: a SQLite file shaped like the app's ``meeting_agent.db``.

Tests, benchmarks and the demo need a dev database that looks like the real one without
anyone's meetings in it. ``generate_dev_database`` builds one from the dev schema
(``devtools/dev_schema.sql``, executed as it is) and fills the eight tables:

    python -m devtools.sample --rows 500 --db ./meeting_agent.db --uploads ./uploads

- **Shape.** About ``rows`` rows in all (exactly ``rows`` from a few hundred up),
  distributed as the app accumulates them: ~0.1% users, a few hotword sets and prompt
  templates, 10% tasks of which about half are completed, each completed task with one
  transcript (a few KB of text, a ``segments`` JSON array), 2-4 speaker mappings and 1-3
  generated artifacts; audit logs are the rest (~60%).
- **Values as the app stored them:** DATETIME as ``'YYYY-MM-DD HH:MM:SS.ffffff'`` text
  (naive UTC), BOOLEAN as 0/1, JSON as ``json.dumps`` text, task ids as dashed UUIDs,
  CJK and emoji in titles, texts and names. A few percent of each other form that
  hand-written rows and old scripts left behind: datetimes with a ``T``, a ``Z``, a
  ``+08:00`` offset or no fraction; JSON with raw UTF-8 instead of escapes; a cost
  stored as the INTEGER 0; paths as ``./uploads/...``, ``uploads\\...``, absolute
  ``/home/dev/meeting-agent/uploads/...`` or NULL. (A NUMERIC column cannot hold a
  number as text: SQLite's NUMERIC affinity turns ``'0.1'`` into REAL on insert.)
- **Valid for PostgreSQL:** no orphans, lengths within each VARCHAR(n), valid JSON and
  dates. Bad rows are the tests' business; they make them on purpose.
- **Files.** With ``uploads_dir``, every path in the database names a file there (the
  absolute form's ``/home/dev/meeting-agent/uploads`` stands for that folder), with
  varied sizes and names with spaces, CJK, ``#``, ``%`` and ``+``; plus a ``tmp/`` folder
  and a ``*.part`` upload that a cutover must leave behind.
- **Deterministic and lean.** The same ``rows`` and ``seed`` give the same rows and files.
  Each table is one ``executemany`` over a generator in one transaction, so a million
  rows take seconds and memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any, NamedTuple

# The dev database's schema exactly as the app's create_all() made it on SQLite: the
# source the cutover reads. The one copy of that text in the repository.
DEV_SCHEMA = files("devtools") / "dev_schema.sql"

# The folder that absolute paths in the dev file were written under (the developer's
# machine); it stands for the uploads folder.
UPLOADS_ALIAS = "/home/dev/meeting-agent/uploads"
# Where each file-path column keeps its files, relative to the uploads folder.
AUDIO, RAW, EXPORTS, HOTWORDS = "audio", "raw", "exports", "hotwords"

# Every "other" form of a value (a datetime with 'T', a './' path, ...) gets this share.
OTHER_FORM_SHARE = 0.03

START = datetime(2023, 3, 1, 8, 0)
SPAN = timedelta(days=730)
BEIJING = timedelta(hours=8)
SMALLEST_FILE, LARGEST_FILE = 5, 300_000

Row = tuple[Any, ...]

# --- vocabulary ------------------------------------------------------------------------

SENTENCES = (
    "我们先过一下上周的 action items。",
    "这个需求下周三之前一定要上线。",
    "API 的 rate limit 需要再调一下，现在是每分钟 600 次。",
    "Let's move the retro to Thursday afternoon.",
    "客户反馈转写准确率还不错 👍",
    "火山引擎的热词表已经更新到最新版本了。",
    "I think the latency issue comes from the ASR callback.",
    "预算这块我们控制在 5 万以内。",
    "数据库迁移计划放在周末凌晨执行，大家注意值班安排。",
    "Can everyone hear me? 好的，那我们开始吧。",
    "这个问题我会后单独跟进一下 🙏",
    "上线以后要盯一下错误率和 P99 延迟。",
    "The minutes should go out within an hour after the meeting.",
    "设计稿今天下班前发到群里。",
    "我们需要确认一下 TOS 的 bucket 权限。",
    "好，这一项先这样，下一个议题。",
    "Sales wants a demo for 华东区的客户 next Monday.",
    "测试环境的数据要清理一下，别影响演示 😅",
    "这个 bug 复现不了，可能是偶发的网络抖动。",
    "Overall the quarter looks good, revenue is up 12%.",
    "麻烦把会议纪要同步到企业微信群。",
    "我补充一点：说话人分离在多人讨论时还不太稳定。",
    "Let's timebox this discussion to ten minutes.",
    "下个迭代的重点是导出 Word 和 PDF。",
)
TITLES = (
    "产品周会 #{n}",
    "Weekly sync 🚀 {date}",
    "客户访谈：{company}",
    "研发站会 ☕ {date}",
    "Q{q} OKR 复盘",
    "1:1 with {person}",
    "招聘面试 – 后端工程师 👩‍💻",
    "董事会 {date}（机密）",
    "{company} 项目启动会 🎉",
    "Design review: 转写页面改版 v{n}",
)
COMPANIES = ("Acme Corp", "字节跳动", "华为云", "蔚来汽车", "Globex 🌐", "招商银行")
PEOPLE = (
    "张伟", "王芳", "李娜", "刘洋", "陈静", "Alice 🎧", "Bob", "赵磊（产品）", "Ming Li",
    "佐藤 花子",
)
PINYIN = ("zhangwei", "wangfang", "lina", "liuyang", "chenjing", "alice", "bob", "zhaolei")
HOTWORD_POOL = (
    "火山引擎", "豆包", "会议纪要", "说话人分离", "OKR", "TOS", "PostgreSQL", "企业微信",
    "飞书", "转写", "热词", "SaaS", "GMV", "私有化部署", "大模型", "Kubernetes", "灰度发布",
)
ERRORS = (
    "ASR timeout after 600s",
    "音频格式不支持: audio/x-ms-wma",
    "火山引擎 ASR 返回错误 code=1013: 音频时长超限",
    "LLM quota exceeded 🙁",
    "uploaded file is empty",
)
# Drawn uniformly from this, a status comes up as often as its share (in percent).
STATUS_SHARES = {
    "completed": 50, "failed": 12, "pending": 15, "transcribing": 8, "generating": 7,
    "cancelled": 8,
}
STATUS_DRAW = tuple(status for status, share in STATUS_SHARES.items() for _ in range(share))
ASR_PROVIDERS = ("volcengine", "volcengine", "aliyun", "whisper")
LANGUAGES = ("zh-CN", "zh-CN", "zh-CN", "en-US", "zh", "ja-JP", None)
ARTIFACT_TYPES = ("minutes", "summary", "action_items")
LLM_MODELS = (
    ("doubao-pro-32k", "volcengine", "CNY"),
    ("deepseek-chat", "deepseek", "CNY"),
    ("gpt-4o-mini", "openai", "USD"),
)
EXPORT_FORMATS = ("md", "docx", "pdf")
FILE_NAMES = (
    "{key}.{ext}",
    "{key} 周会录音.{ext}",
    "{key} Weekly sync #{n}.{ext}",
    "{key} 产品评审+设计.{ext}",
    "{key} 完成度 {n}%.{ext}",
    "{key} 折扣 50%20off.{ext}",  # looks URL-encoded; it is not
    "{key} Q{q} 复盘 #{n} (100%+).{ext}",
)


def _word_count(text: str) -> int:
    """As the app counts words: each CJK character is one, and so is each space-separated run."""
    return len(text.split()) + sum(char >= "\u3000" for char in text)


def _turns(count: int) -> tuple[tuple[str, int], ...]:
    """Speaker turns of two or three sentences, with their word counts, drawn once.

    Transcripts pick from these whole: gluing sentences per turn was most of the time
    the transcripts took.
    """
    rng = random.Random("turns")
    texts = ("".join(rng.choices(SENTENCES, k=rng.randint(2, 3))) for _ in range(count))
    return tuple((text, _word_count(text)) for text in texts)


TURNS = _turns(500)
EXTRA_ACTIONS = ("task.view", "task.view", "artifact.download", "user.login")
LOGIN_DETAILS = json.dumps({"client": "wecom", "ua": "Mozilla/5.0 (iPhone) wxwork/4.1"})
ENDINGS = {"failed": "task.fail", "cancelled": "task.cancel"}


# --- the plan: how many rows of what ----------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How many rows each fixed-size table gets; the task-dependent ones follow the tasks."""

    rows: int
    seed: int
    users: int
    hotword_sets: int
    prompt_templates: int
    tasks: int

    @classmethod
    def for_rows(cls, rows: int, seed: int) -> Plan:
        return cls(
            rows=rows,
            seed=seed,
            users=max(3, rows // 1000),
            hotword_sets=max(2, rows // 2000),
            prompt_templates=max(5, rows // 4000),
            tasks=max(1, rows // 10),
        )

    def rng(self, stream: str) -> Random:
        """One random stream per table, so each table's rows depend on the seed alone."""
        return Random(f"{self.seed}/{stream}")


class Random(random.Random):
    """``random.Random`` with choice and randint cut down to one float draw each.

    The library's versions draw exact integers with rejection sampling, several times
    slower; at a million rows that was a third of the generator's time, and the small
    ranges here need no exactness.
    """

    def choice(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.random() * len(seq))]

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))


class Task(NamedTuple):
    """What the tables that hang off a task need to know about it."""

    number: int
    id: str
    user_id: int
    title_kind: int
    status: str
    asr_provider: str
    language: str | None
    created: datetime
    duration: float
    speakers: int  # 0 unless completed
    artifacts: int  # 0 unless completed

    @property
    def title(self) -> str:
        # Worked out when asked: most of the replays of the outline never need it.
        number = self.number
        return TITLES[self.title_kind].format(
            n=number % 97 + 1,
            q=number % 4 + 1,
            date=f"{number % 12 + 1:02d}/{number % 28 + 1:02d}",
            company=COMPANIES[number % len(COMPANIES)],
            person=PEOPLE[number % len(PEOPLE)],
        )


def tasks(plan: Plan) -> Iterator[Task]:
    """The tasks, in creation order; replayed identically by every table that needs them.

    Replaying (six times) keeps memory flat, so the outline is kept cheap to draw: one
    float draw per field, positional arguments.
    """
    rng = plan.rng("tasks-outline")
    step = SPAN.total_seconds() / plan.tasks
    for number in range(plan.tasks):
        status = rng.choice(STATUS_DRAW)
        completed = status == "completed"
        yield Task(
            number,
            _uuid4(rng),
            rng.randint(1, plan.users),
            rng.randint(0, len(TITLES) - 1),
            status,
            rng.choice(ASR_PROVIDERS),
            rng.choice(LANGUAGES),
            START + timedelta(seconds=step * (number + rng.random())),
            round(60 + rng.random() * 7140, 3),
            rng.randint(2, 4) if completed else 0,
            rng.randint(1, 3) if completed else 0,
        )


def _uuid4(rng: Random) -> str:
    """A random (version 4) UUID, dashed as the app writes task ids."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# --- value forms ------------------------------------------------------------------------


def _variant(rng: Random, usual: Callable, others: Sequence[Callable]) -> Callable:
    """The usual form, or each other form with OTHER_FORM_SHARE."""
    roll = rng.random()
    index = int(roll / OTHER_FORM_SHARE)
    return others[index] if index < len(others) else usual


def _app_datetime(moment: datetime) -> str:
    return moment.isoformat(" ", "microseconds")


DATETIME_OTHER_FORMS: tuple[Callable[[datetime], str], ...] = (
    lambda moment: moment.isoformat("T", "microseconds"),
    lambda moment: moment.isoformat("T", "microseconds") + "Z",
    # The same instant written as Beijing local time with its offset.
    lambda moment: (moment + BEIJING).isoformat("T", "seconds") + "+08:00",
    lambda moment: moment.isoformat(" ", "seconds"),
)


def stamp(rng: Random, moment: datetime) -> str:
    """A DATETIME value as the dev file holds it (``moment`` is naive UTC)."""
    return _variant(rng, _app_datetime, DATETIME_OTHER_FORMS)(moment)


def _app_json(value: Any) -> str:
    return json.dumps(value)  # SQLAlchemy's JSON type: ASCII with \\u escapes


def _raw_utf8_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def document(rng: Random, value: Any) -> str:
    """A JSON value as the dev file holds it."""
    return _variant(rng, _app_json, (_raw_utf8_json,))(value)


def _app_cost(cost: float) -> float:
    return cost


def _free_call(cost: float) -> int:
    return 0  # an old script logged free calls as the integer 0


def money(rng: Random, cost: float) -> float | int:
    """A NUMERIC(12, 6) value: REAL like 0.0123, sometimes the INTEGER 0."""
    return _variant(rng, _app_cost, (_free_call,))(round(cost, 4))


PATH_FORMS: tuple[Callable[[str], str | None], ...] = (
    lambda relative: f"./uploads/{relative}",
    lambda relative: "uploads\\" + relative.replace("/", "\\"),
    lambda relative: f"{UPLOADS_ALIAS}/{relative}",
    lambda relative: None,
)


def _app_path(relative: str) -> str:
    return f"uploads/{relative}"


def file_path(rng: Random, relative: str) -> str | None:
    """A *_path value naming ``relative`` (under the uploads folder), or NULL."""
    return _variant(rng, _app_path, PATH_FORMS)(relative)


def _file_name(rng: Random, key: str, extension: str) -> str:
    return rng.choice(FILE_NAMES).format(
        key=key, ext=extension, n=rng.randint(1, 99), q=rng.randint(1, 4)
    )


def _file_size(rng: Random) -> int:
    """Log-uniform, so tiny and large files are both common."""
    return int(math.exp(rng.uniform(math.log(SMALLEST_FILE), math.log(LARGEST_FILE))))


class Uploads:
    """The uploads folder the *_path columns point into; writes nothing without one."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def add(self, rng: Random, folder: str, key: str, extension: str,
            content: bytes | int) -> str | None:
        """Place a file (given content, or that many filler bytes); return its *_path value.

        The random draws are the same with or without a folder, so the database does not
        depend on whether files are written.
        """
        relative = f"{folder}/{_file_name(rng, key, extension)}"
        path = file_path(rng, relative)
        if path is not None:
            self._write(relative, content)
        return path

    def add_leftovers(self) -> None:
        """What an interrupted upload and the app's scratch space leave behind."""
        self._write("tmp/chunk-000001.bin", 4096)
        self._write("tmp/上传中 recording.m4a", 1500)
        self._write(f"{AUDIO}/unfinished upload 周会.m4a.part", 65_536)

    def _write(self, relative: str, content: bytes | int) -> None:
        if self.root is None:
            return
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else _filler(relative, content))


def _filler(relative: str, size: int) -> bytes:
    """Deterministic bytes, different for every file."""
    line = f"{relative}\n".encode()
    return (line * (size // len(line) + 1))[:size]


# --- rows, one generator per table --------------------------------------------------------


def user_rows(plan: Plan, uploads: Uploads) -> Iterator[Row]:
    rng = plan.rng("users")
    for user_id in range(1, plan.users + 1):
        username = f"{rng.choice(PINYIN)}{user_id}"
        created = START - timedelta(days=rng.uniform(1, 90))
        yield (
            user_id,
            username,
            f"{username}@example.com" if rng.random() < 0.9 else None,
            rng.choice(PEOPLE),
            f"WW{user_id:06d}" if rng.random() < 0.7 else None,
            f"tenant-{user_id % 3 + 1}",
            "admin" if user_id == 1 else rng.choice(("member", "member", "viewer")),
            int(user_id % 5 != 0),  # every fifth user has left
            stamp(rng, created),
            stamp(rng, created + timedelta(days=rng.uniform(0, 30))) if rng.random() < 0.6
            else None,
            stamp(rng, START + SPAN * rng.random()) if rng.random() < 0.9 else None,
        )


def prompt_template_rows(plan: Plan, uploads: Uploads) -> Iterator[Row]:
    rng = plan.rng("prompt_templates")
    for template_id in range(1, plan.prompt_templates + 1):
        artifact_type = ARTIFACT_TYPES[(template_id - 1) % len(ARTIFACT_TYPES)]
        created = START - timedelta(days=rng.uniform(0, 60))
        yield (
            template_id,
            None if template_id <= len(ARTIFACT_TYPES) else rng.randint(1, plan.users),
            f"{artifact_type} 模板 #{template_id}",
            artifact_type,
            f"你是会议助理。请根据以下转写为「{{title}}」生成{artifact_type}：\n{{transcript}}",
            document(rng, ["title", "transcript"]),
            int(template_id <= len(ARTIFACT_TYPES)),  # the system templates are defaults
            rng.randint(1, 5),
            stamp(rng, created),
            stamp(rng, created + timedelta(days=rng.uniform(0, 60))) if rng.random() < 0.5
            else None,
        )


def hotword_set_rows(plan: Plan, uploads: Uploads) -> Iterator[Row]:
    rng = plan.rng("hotword_sets")
    for set_id in range(1, plan.hotword_sets + 1):
        words = rng.sample(HOTWORD_POOL, rng.randint(3, len(HOTWORD_POOL)))
        created = START + SPAN * rng.random() / 2
        yield (
            set_id,
            rng.randint(1, plan.users) if rng.random() < 0.8 else None,
            f"热词表 {set_id} 🔥",
            document(rng, words),
            rng.choice(ASR_PROVIDERS),
            f"hw-{rng.getrandbits(48):012x}" if rng.random() < 0.7 else None,
            uploads.add(rng, HOTWORDS, f"set-{set_id}", "txt", "\n".join(words).encode()),
            stamp(rng, created),
            stamp(rng, created + timedelta(days=rng.uniform(0, 30))) if rng.random() < 0.5
            else None,
        )


def task_rows(plan: Plan, uploads: Uploads) -> Iterator[Row]:
    rng = plan.rng("tasks")
    for task in tasks(plan):
        size = _file_size(rng)
        audio_path = uploads.add(rng, AUDIO, task.id, rng.choice(("m4a", "mp3", "wav")), size)
        started = task.status != "pending"
        finished = task.created + timedelta(seconds=task.duration * rng.uniform(0.2, 0.6))
        yield (
            task.id,
            task.user_id,
            rng.randint(1, plan.hotword_sets) if rng.random() < 0.4 else None,
            task.title,
            task.status,
            audio_path,
            size if audio_path is not None else None,
            task.duration,
            task.asr_provider,
            task.language,
            rng.choice(ERRORS) if task.status == "failed" else None,
            stamp(rng, task.created),
            stamp(rng, finished) if started else None,
            stamp(rng, finished) if task.status == "completed" else None,
        )


def transcript_rows(plan: Plan, uploads: Uploads) -> Iterator[Row]:
    rng = plan.rng("transcripts")
    completed = (task for task in tasks(plan) if task.status == "completed")
    for transcript_id, task in enumerate(completed, start=1):
        segments, words = _segments(rng, task)
        yield (
            transcript_id,
            task.id,
            task.asr_provider,
            task.language,
            "\n".join(segment["text"] for segment in segments),
            document(rng, segments),
            uploads.add(rng, RAW, task.id, "json", _file_size(rng)),
            words,
            stamp(rng, task.created + timedelta(seconds=task.duration * 0.2)),
        )


def _segments(rng: Random, task: Task) -> tuple[list[dict[str, Any]], int]:
    """Speaker turns (a few KB of text in all), and their word count."""
    turns = rng.randint(8, 24)
    length = task.duration / turns
    segments = []
    words = 0
    for turn in range(turns):
        text, turn_words = rng.choice(TURNS)
        words += turn_words
        segments.append({
            "speaker": _speaker_label(rng.randint(0, task.speakers - 1)),
            "start": round(turn * length, 2),
            "end": round((turn + 0.5 + rng.random() / 2) * length, 2),
            "text": text,
        })
    return segments, words


def _speaker_label(index: int) -> str:
    return f"SPEAKER_{index:02d}"


def speaker_mapping_rows(plan: Plan, uploads: Uploads) -> Iterator[Row]:
    rng = plan.rng("speaker_mappings")
    mapping_id = 0
    for task in tasks(plan):
        for speaker in range(task.speakers):
            mapping_id += 1
            named = rng.random() < 0.8
            yield (
                mapping_id,
                task.id,
                _speaker_label(speaker),
                rng.choice(PEOPLE) if named else None,
                rng.randint(1, plan.users) if named and rng.random() < 0.5 else None,
                stamp(rng, task.created + timedelta(seconds=task.duration * 0.3)),
            )


def generated_artifact_rows(plan: Plan, uploads: Uploads) -> Iterator[Row]:
    rng = plan.rng("generated_artifacts")
    artifact_id = 0
    for task in tasks(plan):
        versions = dict.fromkeys(ARTIFACT_TYPES, 0)
        for _ in range(task.artifacts):
            artifact_id += 1
            artifact_type = rng.choice(ARTIFACT_TYPES)
            versions[artifact_type] += 1
            model, _provider, _currency = rng.choice(LLM_MODELS)
            extension = rng.choice(EXPORT_FORMATS)
            key = f"{task.id}-{artifact_type}-v{versions[artifact_type]}"
            input_tokens = rng.randint(2_000, 30_000)
            yield (
                artifact_id,
                task.id,
                rng.randint(1, plan.prompt_templates) if rng.random() < 0.8 else None,
                artifact_type,
                versions[artifact_type],
                _minutes(rng, task) if extension == "md" or rng.random() < 0.5 else None,
                uploads.add(rng, EXPORTS, key, extension, _file_size(rng)),
                model,
                input_tokens,
                input_tokens // rng.randint(5, 20),
                money(rng, rng.uniform(0.001, 0.2)) if rng.random() < 0.9 else None,
                stamp(rng, task.created + timedelta(seconds=task.duration * 0.5)),
            )


def _minutes(rng: Random, task: Task) -> str:
    points = "\n".join(f"- {sentence}" for sentence in rng.choices(SENTENCES, k=6))
    actions = "\n".join(f"- [ ] {rng.choice(PEOPLE)}：{rng.choice(SENTENCES)}" for _ in range(3))
    return f"# 会议纪要：{task.title}\n\n## 要点\n{points}\n\n## 待办\n{actions}\n"


def audit_log_rows(plan: Plan, budget: int) -> Iterator[Row]:
    """Each task's lifecycle events, then views and logins until ``budget`` rows in all."""
    rng = plan.rng("audit_logs")
    lifecycle_total = sum(len(_lifecycle(task)) for task in tasks(plan))
    extras = max(0, budget - lifecycle_total)
    log_id = 0
    for task in tasks(plan):
        # Spread the extras evenly over the tasks so the total is exact.
        extra = (task.number + 1) * extras // plan.tasks - task.number * extras // plan.tasks
        actions = _lifecycle(task) + [rng.choice(EXTRA_ACTIONS) for _ in range(extra)]
        # One details document per task: serialising it per event doubled the time.
        about = document(rng, {"task_title": task.title})
        for step, action in enumerate(actions):
            if log_id == budget:
                return
            log_id += 1
            yield (log_id, *_audit_event(rng, plan, task, about, action, step))


def _lifecycle(task: Task) -> list[str]:
    actions = ["task.create", "file.upload"]
    if task.status not in ("pending", "cancelled"):
        actions.append("asr.submit")
    if task.status == "completed":
        actions += ["asr.complete", *["llm.generate"] * task.artifacts, "task.complete"]
    elif task.status in ENDINGS:
        actions.append(ENDINGS[task.status])
    return actions


def _audit_event(rng: Random, plan: Plan, task: Task, about: str, action: str,
                 step: int) -> Row:
    """user_id .. created_at of the ``step``-th audit log row on ``task``.

    ``about`` is the task's details document, used unless the action has its own.
    """
    provider = cost = None
    currency = "CNY"
    details: str | None = about
    if action.startswith("asr."):
        provider = task.asr_provider
        if action == "asr.complete":
            cost = money(rng, task.duration / 3600 * 1.2)
    elif action == "llm.generate":
        model, provider, currency = rng.choice(LLM_MODELS)
        cost = money(rng, rng.uniform(0.001, 0.2))
        details = document(rng, {"model": model, "tokens": rng.randint(2_000, 40_000)})
    elif action == "user.login":
        details = None if rng.random() < 0.5 else LOGIN_DETAILS
    user_id = task.user_id if rng.random() < 0.9 else rng.randint(1, plan.users)
    moment = task.created + timedelta(seconds=step * task.duration * 0.1 + rng.uniform(0, 5))
    return (
        user_id,
        None if action == "user.login" else task.id,
        action,
        provider,
        cost,
        currency,
        details,
        _ip_address(rng),
        stamp(rng, moment),
    )


def _ip_address(rng: Random) -> str | None:
    roll = rng.random()
    if roll < 0.1:
        return None
    if roll < 0.2:
        return f"2408:8207:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"
    return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


# --- the file ---------------------------------------------------------------------------

# The columns of each table, in the dev schema's order.
COLUMNS = {
    "users": (
        "id", "username", "email", "display_name", "wecom_userid", "tenant_id", "role",
        "is_active", "created_at", "updated_at", "last_login_at",
    ),
    "prompt_templates": (
        "id", "owner_id", "name", "artifact_type", "content", "variables", "is_default",
        "version", "created_at", "updated_at",
    ),
    "hotword_sets": (
        "id", "owner_id", "name", "words", "asr_provider", "provider_resource_id", "file_path",
        "created_at", "updated_at",
    ),
    "tasks": (
        "id", "user_id", "hotword_set_id", "title", "status", "audio_path", "audio_size",
        "audio_duration", "asr_provider", "language", "error_message", "created_at",
        "updated_at", "completed_at",
    ),
    "transcripts": (
        "id", "task_id", "asr_provider", "language", "text", "segments", "raw_result_path",
        "word_count", "created_at",
    ),
    "speaker_mappings": ("id", "task_id", "speaker_label", "speaker_name", "user_id", "created_at"),
    "generated_artifacts": (
        "id", "task_id", "prompt_template_id", "artifact_type", "version", "content",
        "file_path", "llm_model", "input_tokens", "output_tokens", "cost", "created_at",
    ),
    "audit_logs": (
        "id", "user_id", "task_id", "action", "provider", "cost", "currency", "details",
        "ip_address", "created_at",
    ),
}
# Parents first. The audit logs come last: they take whatever the row budget leaves.
ROW_MAKERS: dict[str, Callable[[Plan, Uploads], Iterator[Row]]] = {
    "users": user_rows,
    "prompt_templates": prompt_template_rows,
    "hotword_sets": hotword_set_rows,
    "tasks": task_rows,
    "transcripts": transcript_rows,
    "speaker_mappings": speaker_mapping_rows,
    "generated_artifacts": generated_artifact_rows,
}


def _insert(connection: sqlite3.Connection, table: str, rows: Iterator[Row]) -> int:
    columns = COLUMNS[table]
    marks = ", ".join("?" * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    return connection.executemany(sql, rows).rowcount


def generate_dev_database(
    path: Path, *, rows: int = 500, seed: int = 7, uploads_dir: Path | None = None
) -> dict[str, int]:
    """Create the dev database ``path`` (which must not exist) with about ``rows`` rows.

    Returns the number of rows of each table. With ``uploads_dir``, also writes the files
    the *_path columns name, under it.
    """
    if path.exists():
        raise FileExistsError(f"{path} already exists; the sample generator only makes new files")
    plan = Plan.for_rows(rows, seed)
    uploads = Uploads(uploads_dir)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        # A scratch file: nothing to protect, so skip the journal and the fsyncs.
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.executescript(DEV_SCHEMA.read_text(encoding="utf-8"))
        connection.execute("BEGIN")
        counts = {
            table: _insert(connection, table, make_rows(plan, uploads))
            for table, make_rows in ROW_MAKERS.items()
        }
        budget = max(0, plan.rows - sum(counts.values()))
        counts["audit_logs"] = _insert(connection, "audit_logs", audit_log_rows(plan, budget))
        connection.execute("COMMIT")
    finally:
        connection.close()
    uploads.add_leftovers()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500, help="about this many rows in all")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db", type=Path, default=Path("meeting_agent.db"),
                        help="the SQLite file to create")
    parser.add_argument("--uploads", type=Path, help="also write the files, under this folder")
    parser.add_argument("--force", action="store_true", help="replace an existing --db file")
    args = parser.parse_args(argv)
    if args.force:
        args.db.unlink(missing_ok=True)
    try:
        counts = generate_dev_database(
            args.db, rows=args.rows, seed=args.seed, uploads_dir=args.uploads
        )
    except FileExistsError as exc:
        print(f"sample: {exc} (pass --force to replace it)", file=sys.stderr)
        return 2
    width = max(map(len, counts))
    for table, count in counts.items():
        print(f"{table:<{width}}  {count:>10,}")
    print(f"{'total':<{width}}  {sum(counts.values()):>10,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
