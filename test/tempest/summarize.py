#!/usr/bin/python3
"""Summarize a Tempest subunit v2 stream.

Usage: summarize.py RESULTS.subunit OUTDIR [TEST-LIST]

Writes OUTDIR/summary.txt (counts, failed tests, skipped tests with their
reason), OUTDIR/failures.txt (each failure's traceback and the requests the
test made) and OUTDIR/results.csv (test id, status, seconds), and prints the
closing line "N passed, N failed, N skipped".

Subunit reports a class whose setUpClass skipped or failed as one entry,
"setUpClass (module.Class)". With TEST-LIST (the output of
`tempest run --list-tests` with the same selector) every listed test is
counted: a test of such a class gets the class's status, so the counts add
up to the number of tests Tempest lists.
"""
import csv
import os
import re
import sys

import subunit
import testtools

FINAL = {"success", "fail", "skip", "xfail", "uxsuccess"}


def text(details, key):
    d = details.get(key)
    if d is None:
        return ""
    try:
        return d.as_text()
    except Exception:  # binary attachment
        return ""


def short(test_id):
    """Drop the [id-...,smoke] attribute suffix."""
    return re.sub(r"\[.*\]$", "", test_id)


def idempotent_id(test_id):
    m = re.search(r"id-([0-9a-f-]{36})", test_id)
    return m.group(1) if m else ""


def first_error(log):
    """The first request in a test's log answered with a 4xx/5xx status
    (outside cleanups), with its request and response details."""
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", log)
    for n, rec in enumerate(records):
        m = re.search(r"Request \(([^)]*)\): ([45]\d\d) ", rec)
        if m and not m.group(1).endswith((":tearDown", ":_run_cleanups")):
            detail = records[n + 1] if n + 1 < len(records) else ""
            return rec.split("] ", 1)[-1] + "\n" + detail.split("] ", 1)[-1]
    return ""


def main():
    stream_path, outdir = sys.argv[1], sys.argv[2]
    results = {}

    def on_test(t):
        if t["status"] not in FINAL:
            return
        ts = t.get("timestamps") or [None, None]
        secs = ""
        if ts[0] and ts[1]:
            secs = "%.2f" % (ts[1] - ts[0]).total_seconds()
        results[t["id"]] = (t["status"], t["details"], secs)

    with open(stream_path, "rb") as f:
        case = subunit.ByteStreamToStreamResult(f, non_subunit_name="stdout")
        sink = testtools.StreamToDict(on_test)
        sink.startTestRun()
        case.run(sink)
        sink.stopTestRun()

    passed = sorted(i for i, r in results.items() if r[0] in ("success", "xfail"))
    failed = sorted(i for i, r in results.items() if r[0] in ("fail", "uxsuccess"))
    skipped = sorted(i for i, r in results.items() if r[0] == "skip")

    # Per listed test, with class-level (setUpClass) results expanded.
    listed = {}
    if len(sys.argv) > 3:
        with open(sys.argv[3]) as f:
            ids = [l.strip() for l in f if l.startswith("tempest.")]
        by_short = {short(i): r for i, r in results.items()}
        classes = {}
        for i, r in results.items():
            m = re.match(r"^setUpClass \((.*)\)$", i)
            if m:
                classes[m.group(1)] = r
        for i in ids:
            if short(i) in by_short:
                listed[i] = (by_short[short(i)][0], "")
            else:
                cls = short(i).rsplit(".", 1)[0]
                if cls in classes:
                    listed[i] = (classes[cls][0], "setUpClass")
                else:
                    listed[i] = ("not run", "")

    with open(os.path.join(outdir, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["test", "idempotent_id", "status", "seconds", "via"])
        if listed:
            for i in sorted(listed):
                secs = results[i][2] if i in results else ""
                w.writerow([short(i), idempotent_id(i), listed[i][0], secs, listed[i][1]])
        else:
            for i in sorted(results):
                w.writerow([short(i), idempotent_id(i), results[i][0], results[i][2], ""])

    with open(os.path.join(outdir, "failures.txt"), "w") as f:
        for i in failed:
            details = results[i][1]
            f.write("=" * 78 + "\nFAIL: %s\n" % i + "-" * 78 + "\n")
            tb = text(details, "traceback")
            f.write(tb if tb else "(no traceback)\n")
            for key in sorted(details):
                if key in ("traceback", "reason"):
                    continue
                body = text(details, key)
                if not body:
                    continue
                if key == "pythonlogging:''":
                    # Tempest's request log: one line per request, then the
                    # last request and response in full.
                    reqs = [l.split("[tempest.lib.common.rest_client] ", 1)[1]
                            for l in body.splitlines()
                            if "[tempest.lib.common.rest_client] Request (" in l]
                    f.write("--- requests ---\n%s\n" % "\n".join(reqs))
                    bad = first_error(body)
                    if bad:
                        f.write("--- first failed request/response ---\n%s\n" % bad[:3000])
                else:
                    f.write("--- %s ---\n%s\n" % (key, body[-4000:]))
            f.write("\n")

    with open(os.path.join(outdir, "summary.txt"), "w") as f:
        f.write("subunit entries %d: %d passed, %d failed, %d skipped\n" % (
            len(results), len(passed), len(failed), len(skipped)))
        if listed:
            def n(st):
                return sum(1 for v in listed.values() if v[0] in st)
            def nc(st):
                return sum(1 for v in listed.values() if v[0] in st and v[1])
            f.write("listed tests %d: %d passed, %d failed (%d in a class whose "
                    "setUpClass failed), %d skipped (%d by a class-level skip), "
                    "%d not run\n" % (
                        len(listed), n(("success", "xfail")),
                        n(("fail", "uxsuccess")), nc(("fail", "uxsuccess")),
                        n(("skip",)), nc(("skip",)), n(("not run",))))
        f.write("\n")
        f.write("FAILED (%d)\n" % len(failed))
        for i in failed:
            f.write("  %s\n" % i)
        f.write("\nSKIPPED (%d)\n" % len(skipped))
        for i in skipped:
            reason = text(results[i][1], "reason").strip().replace("\n", " ")
            f.write("  %s\n      reason: %s\n" % (i, reason))

    if listed:
        counts = [sum(1 for v in listed.values() if v[0] in st) for st in
                  (("success", "xfail"), ("fail", "uxsuccess"), ("skip",), ("not run",))]
        print("%d tests listed, %d not run" % (len(listed), counts[3]))
        print("%d passed, %d failed, %d skipped" % tuple(counts[:3]))
    else:
        print("%d passed, %d failed, %d skipped" % (len(passed), len(failed), len(skipped)))


if __name__ == "__main__":
    main()
