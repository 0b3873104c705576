/**
 * The repository as the booted test deploys it: a bare repository holding one
 * commit of the working tree as it is now (tracked and untracked files, not
 * ignored ones), on branch `main`. The README's `git clone <this repository>`
 * clones it, so a run tests the code on disk, committed or not, and never
 * what `.gitignore` keeps out (`var/`, `node_modules/`): those the guide
 * itself must bring.
 *
 * @module
 */
import { sh } from "../process.ts";

const SCRIPT = `
set -euo pipefail
repo=$1 dest=$2
cd "$repo"
index=$(mktemp)
trap 'rm -f "$index"' EXIT
cp "$(git rev-parse --path-format=absolute --git-path index)" "$index"
export GIT_INDEX_FILE=$index
git add -A
tree=$(git write-tree)
export GIT_AUTHOR_NAME=e2e GIT_AUTHOR_EMAIL=e2e@localhost
export GIT_COMMITTER_NAME=e2e GIT_COMMITTER_EMAIL=e2e@localhost
commit=$(git commit-tree "$tree" -p HEAD -m "the working tree under test")
git init -q --bare "$dest"
git push -q "$dest" "$commit:refs/heads/main"
git --git-dir="$dest" symbolic-ref HEAD refs/heads/main
echo "$commit"
`;

/** Snapshots `repo`'s working tree into a bare repository at `dest`; returns the commit. */
export async function snapshotRepository(repo: string, dest: string): Promise<string> {
  const r = await sh("bash", ["-c", SCRIPT, "snapshot", repo, dest]);
  return r.stdout.trim();
}
