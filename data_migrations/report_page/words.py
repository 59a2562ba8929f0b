"""Every word the report page prints, in English and Chinese (REPORT_LANGUAGE). The names
the operator types (commands, settings, tables, files) stay as they are in both."""

from __future__ import annotations

LANGUAGES = ("en", "zh")

_WORDS: dict[str, tuple[str, str]] = {
    "title.migrate": ("Cutover report", "切换报告"),
    "title.plan": ("Plan report (dry run)", "演练报告（dry run）"),
    "title.presync": ("Presync report", "预同步报告"),
    "title.verify": ("Verify report", "校验报告"),
    "verdict.failed": ("FAILED: not ready", "失败：不可上线"),
    "next.failed": ("Fix what the lines below name, then run the same command again "
                    "(the run resumes where it stopped).",
                    "按下面各行指出的问题修正后，重新执行同一条命令（会从中断处继续）。"),
    "next.failed.checks": ("Fix what the failing checks below name, then run make verify "
                           "again.", "按下面失败的检查项修正后，再执行一次 make verify。"),
    "verdict.left_behind": ("NOT READY: rows were left behind",
                            "不可上线：有数据被遗漏"),
    "next.left_behind": ("The app wrote rows to the dev file after the snapshot; run "
                         "make catch-up, then make verify, before going live.",
                         "快照之后应用又向开发库写入了数据：上线前先执行 make catch-up，"
                         "再执行 make verify。"),
    "verdict.migrate": ("Cutover finished", "切换完成"),
    "next.migrate": ("Run make verify; go live once every check passes.",
                     "执行 make verify；全部检查通过后即可上线。"),
    "verdict.migrate.verified": ("Cutover finished and verified: go live",
                                 "切换完成并已校验通过：可以上线"),
    "next.migrate.verified": ("Point the app at PostgreSQL and TOS.",
                              "把应用切到 PostgreSQL 和 TOS。"),
    "verdict.migrate.unverified": ("Cutover finished, but verify FAILED: not ready",
                                   "切换完成，但校验失败：不可上线"),
    "verdict.plan": ("The plan found nothing to fix", "演练未发现需要修正的问题"),
    "next.plan": ("Run make presync, then make migrate in the freeze window.",
                  "执行 make presync，然后在停写窗口内执行 make migrate。"),
    "verdict.presync": ("Presync finished", "预同步完成"),
    "next.presync": ("The cutover moves only what changes from now on; run make presync "
                     "again shortly before the freeze.",
                     "切换时只需搬运此后变化的文件；停写前不久再执行一次 make presync。"),
    "verdict.verify": ("Every check passed: go live", "全部检查通过：可以上线"),
    "next.verify": ("Point the app at PostgreSQL and TOS.", "把应用切到 PostgreSQL 和 TOS。"),
    "failures": ("What failed", "失败原因"),
    "troubleshooting": ("What it means and what to do", "含义与处理办法"),
    "left_behind": ("Rows left behind (written after the snapshot)",
                    "被遗漏的数据（快照之后写入）"),
    "timeline": ("The freeze window", "停写窗口"),
    "timeline.run": ("Time taken", "耗时"),
    "freeze.total": ("Freeze window, from the command's start", "停写窗口（从命令开始算）"),
    "freeze.preflight": ("of it preflight", "其中预检"),
    "step.presync": ("presync", "预同步"),
    "step.preflight": ("preflight", "预检"),
    "step.rows": ("rows", "数据行"),
    "step.files": ("files", "文件"),
    "step.paths": ("paths", "路径"),
    "step.between steps": ("between steps", "步骤之间"),
    "step.verify": ("verify", "校验"),
    "step.run": ("run", "运行"),
    "predicted": ("Predicted against measured", "预测与实测"),
    "predicted.only": ("Predicted freeze window", "预测的停写窗口"),
    "predicted.part": ("part", "部分"),
    "predicted.predicted": ("predicted", "预测"),
    "predicted.measured": ("measured", "实测"),
    "predicted.total": ("total", "合计"),
    "predicted.basis": ("basis", "依据"),
    "tables": ("Rows per table", "各表数据行"),
    "table.table": ("table", "表"),
    "table.dev": ("rows in the dev file", "开发库行数"),
    "table.copied": ("copied", "已复制"),
    "table.rejected": ("rejected", "已拒绝"),
    "table.checksum": ("checksum matched", "校验和一致"),
    "rejects_file": ("Rejected rows are in", "被拒绝的行保存在"),
    "files": ("Files", "文件"),
    "files.kind": ("kind", "类别"),
    "files.count": ("files", "文件数"),
    "files.bytes": ("bytes", "字节"),
    "files.excluded": ("excluded (UPLOAD_EXCLUDE)", "已排除（UPLOAD_EXCLUDE）"),
    "files.refused": ("refused", "已拒绝"),
    "urls": ("URLs fetched as the app fetches them", "按应用方式抓取的 URL"),
    "urls.none": ("No verify has run after this cutover yet.", "本次切换之后尚未执行校验。"),
    "urls.failing": ("failing", "失败"),
    "checks": ("Checks", "检查项"),
    "check.kind": ("check", "检查"),
    "check.subject": ("subject", "对象"),
    "check.result": ("result", "结果"),
    "check.detail": ("detail", "详情"),
    "pass": ("pass", "通过"),
    "FAIL": ("FAIL", "失败"),
    "yes": ("yes", "是"),
    "no": ("NO", "否"),
    "run": ("The run", "运行信息"),
    "run.started": ("started", "开始"),
    "run.ended": ("ended", "结束"),
    "run.revisions_from": ("revision before", "运行前的修订"),
    "run.revisions_ran": ("revisions it upgrades through", "本次升级经过的修订"),
    "run.machine": ("machine", "机器"),
    "settings": ("Settings (secrets masked)", "配置项（密钥已遮盖）"),
    "rollback": ("Rolling back", "回滚"),
    "rollback.intro": ("One step at a time, from the revision make current names:",
                       "从 make current 显示的修订开始，一次回退一步："),
    "notes": ("Notes", "备注"),
}

_FILE_KINDS: dict[str, tuple[str, str]] = {
    "presynced": ("from the presync (not read again)", "来自预同步（未重新读取）"),
    "uploaded": ("sent now", "本次上传"),
    "replaced": ("sent again (content differed)", "重新上传（内容不同）"),
    "resent": ("sent again (storage class or encryption differed)",
               "重新上传（存储类型或加密不同）"),
    "acl_set": ("in the bucket, ACL corrected", "已在桶中，ACL 已更正"),
    "skipped": ("in the bucket already", "已在桶中"),
    "vanished": ("deleted while read", "读取时被删除"),
    "changing": ("changing while read (left out)", "读取时仍在变化（未纳入）"),
}


def word(key: str, language: str) -> str:
    """The text of ``key`` in ``language``; a key with no entry is shown as it is (a step
    or file kind added later still reads)."""
    pair = _WORDS.get(key) or _FILE_KINDS.get(key.removeprefix("kind."))
    if pair is None:
        return key.split(".", 1)[-1]
    return pair[LANGUAGES.index(language)]
