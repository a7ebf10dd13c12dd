"""The analysis jobs' inputs and outputs: uploading ad data files, reading the stored report
of an SEO, keyword or ad job, and the ad automation audit trail."""

from __future__ import annotations

from typing import Any, Literal

from client.base import QueueBase
from core.errors import InvalidArguments, InvalidJobData
from core.jobs import AdFileSource, JobData
from db.ads import MAX_FILE_BYTES, ActionRecord, AdActionStore, AdFileStore
from db.reports import ReportStore


class Analysis(QueueBase):
    def _analysis_stores(self) -> tuple[ReportStore, AdFileStore, AdActionStore]:
        if self.reports is None or self.ad_files is None or self.ad_actions is None:
            raise RuntimeError("this JobQueue has no database for analysis reports")
        return self.reports, self.ad_files, self.ad_actions

    async def upload_ad_data(
        self,
        user_id: str,
        content: bytes | str,
        *,
        format: Literal["csv", "json"],
        filename: str = "upload",
    ) -> str:
        """Store a file of ad performance rows for AD_ANALYSIS or AD_AUTOMATION; the id to
        give as ``source: {"kind": format, "fileId": id}``. The file is read when the job
        runs, and every bad row is reported with its line then."""
        problems: dict[str, str] = {}
        if not isinstance(user_id, str) or not user_id.strip():
            problems["user_id"] = "must be a non-empty string"
        if format not in ("csv", "json"):
            problems["format"] = "must be 'csv' or 'json'"
        body = content.encode() if isinstance(content, str) else content
        if not isinstance(body, bytes) or not body:
            problems["content"] = "must be non-empty bytes or text"
        elif len(body) > MAX_FILE_BYTES:
            problems["content"] = f"must be at most {MAX_FILE_BYTES:,} bytes"
        if problems:
            raise InvalidArguments("upload_ad_data", problems)
        _, files, _ = self._analysis_stores()
        return await files.put(user_id.strip(), body, filename=filename, file_format=format)

    async def _check_ad_file(self, data: JobData) -> None:
        source = getattr(data, "source", None)
        user_id = getattr(data, "user_id", "")
        if not isinstance(source, AdFileSource):
            return
        _, files, _ = self._analysis_stores()
        if await files.get(source.file_id, user_id=user_id) is None:
            job_type = "ad_automation" if hasattr(data, "rules") else "ad_analysis"
            raise InvalidJobData(
                job_type, {"source.fileId": "no uploaded file of this id for this user"}
            )

    async def get_report(self, job_id: str, *, user_id: str) -> dict[str, Any] | None:
        """The full stored report of an SEO_AUDIT (every page), KEYWORD_ANALYSIS,
        AD_ANALYSIS (every ad set and ad, every bad row) or AD_AUTOMATION job; None until it
        is stored, or when the job is another user's."""
        reports, _, _ = self._analysis_stores()
        return await reports.get(job_id, user_id=user_id)

    async def list_ad_actions(
        self, user_id: str, *, job_id: str | None = None, limit: int = 100
    ) -> list[ActionRecord]:
        """The audit trail of ad automation: every action taken for the user (one job's when
        ``job_id`` is given), newest first, with the rule, the state before and after, and
        when."""
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidArguments("list_ad_actions", {"limit": "must be an integer 1..1000"})
        _, _, actions = self._analysis_stores()
        return await actions.of_user(user_id, job_id=job_id, limit=limit)
