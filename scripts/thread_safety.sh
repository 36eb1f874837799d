#!/usr/bin/env bash
# Checks our lock annotations (ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED
# on campaigns::Mutex, server/domain/mutex.h) with clang's thread safety
# analysis: every translation unit of ours (server, storage, client, tools,
# tests) in BUILD_DIR's compile_commands.json (a gcc build) is parsed again
# by clang, -fsyntax-only -Wthread-safety -Wthread-safety-beta, these as
# errors, as many at once as there are cores. Exits non-zero on any.
# A unity build's unit (several sources in one) is parsed as gcc compiled it.
#   scripts/thread_safety.sh BUILD_DIR [FILE...]   (FILE: only these sources)
# Env: CLANGXX (default clang++), JOBS (default: number of cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:?usage: scripts/thread_safety.sh BUILD_DIR [FILE...]}
shift
db=$build_dir/compile_commands.json
[ -s "$db" ] || { echo "no $db: configure the build first" >&2; exit 1; }
exec python3 - "$db" "$root" "${CLANGXX:-clang++}" "${JOBS:-$(nproc)}" "$@" <<'EOF'
import concurrent.futures, json, os, re, shlex, subprocess, sys, time

db, root, clangxx, jobs, only = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
only = {os.path.abspath(f) for f in only}
ours = tuple(os.path.join(root, d) + os.sep
             for d in ("server", "storage", "client", "tools", "tests"))
# Flags that only matter for code generation, or that clang does not know.
drop_prefix = ("-O", "-g", "-flto", "-ffat-lto", "-fno-fat-lto",
               "-fsanitize", "-fno-sanitize", "-fcf-protection",
               "-fstack-clash")
# The analysis can only warn where a capability or an annotation is in
# sight. After a build, gcc's depfile (CMake's -MD) lists the headers of each
# unit: a unit none of whose own files (ours, not system headers) includes
# server/domain/mutex.h, mentions absl::Mutex or carries a thread safety
# annotation has nothing to check and is skipped. Without a depfile (or with
# one older than the source) the unit is checked.
lockish = re.compile(r'server/domain/mutex\.h|absl::Mutex|ABSL_[A-Z_]*'
                     r'(GUARDED|LOCK|CAPABILITY|ACQUIRE|RELEASE|THREAD_SAFETY)')
seen = {}

def mentions_locks(path):
    if path not in seen:
        try:
            seen[path] = bool(lockish.search(open(path, errors="replace").read()))
        except OSError:
            seen[path] = True
    return seen[path]

def may_lock(source, sources, cwd, depfile):
    try:
        built = os.path.getmtime(depfile)
        if any(built < os.path.getmtime(s) for s in [source] + sources):
            return True  # stale: a source changed since the build
        deps = open(depfile).read().replace("\\\n", " ").split()
    except (OSError, TypeError):
        return True
    build = os.path.abspath(os.path.dirname(db)) + os.sep
    for d in [source] + deps:
        if d.endswith(":"):
            continue
        d = os.path.normpath(os.path.join(cwd, d))
        if d.startswith(root + os.sep) and not d.startswith(build) and \
                mentions_locks(d):
            return True
    return False

def sources_of(f):
    """The sources a unit compiles: a unity build's unit (CMake's
    Unity/unity_N_cxx.cxx) #includes several by absolute path."""
    if os.sep + "Unity" + os.sep not in f:
        return [f]
    inc = re.compile(r'^#include "(/[^"]+)"', re.M)
    try:
        return inc.findall(open(f).read())
    except OSError:
        sys.exit("cannot read the unity unit %s: rebuild first" % f)

units, skipped = [], 0
for entry in json.load(open(db)):
    f = os.path.abspath(os.path.join(entry["directory"], entry["file"]))
    sources = [s for s in sources_of(f) if s.startswith(ours)]
    if not sources or (only and not only.intersection(sources)):
        continue
    args = entry.get("arguments") or shlex.split(entry["command"])
    # The compiler, perhaps behind a launcher (ccache): drop up to it.
    while args and args[0].endswith("ccache"):
        args = args[1:]
    cmd, skip = [clangxx], False
    for a in args[1:]:
        if skip:
            skip = False
        elif a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
        elif a not in ("-c", "-MD", "-MMD") and not a.startswith(drop_prefix):
            cmd.append(a)
    # gcc's -Wall -Wextra -Werror are gcc's business: clang warns on other
    # things (e.g. -Wunused-but-set-variable), and this check fails only on
    # the thread safety analysis.
    cmd = [a for a in cmd if not a.startswith("-W")]
    cmd += ["-fsyntax-only", "-Wthread-safety", "-Wthread-safety-beta",
            "-Werror=thread-safety", "-Werror=thread-safety-beta"]
    obj = args[args.index("-o") + 1] if "-o" in args else None
    depfile = os.path.join(entry["directory"], obj + ".d") if obj else None
    if not only and not may_lock(f, sources, entry["directory"], depfile):
        skipped += 1
        continue
    units.append((f, entry["directory"], cmd))

def check(unit):
    f, cwd, cmd = unit
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return f, r.returncode, r.stdout

start = time.monotonic()
failed = 0
with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
    for f, rc, out in pool.map(check, units):
        if rc != 0:
            failed += 1
            sys.stderr.write(out or "%s: clang++ exited %d\n" % (f, rc))
print("thread safety analysis: %d of %d translation units failed, %d with "
      "no locks in sight skipped (%.0f s)"
      % (failed, len(units), skipped, time.monotonic() - start))
sys.exit(1 if failed or not units else 0)
EOF
