# shellcheck shell=sh
# Version order on the client, the same rule as src/version.rs (see
# docs/versions.md): segments split on `.`, digit runs compared as numbers
# of any length, text runs by bytes, a number after text, missing segments
# as `0`; a pre-release (after the first `-`) sorts before its release;
# versions equal by the rule but spelled differently order by spelling.
# The client needs it to enforce the signed upgrade policy itself: it
# refuses a downgrade the order does not allow, whatever the controller says.
#
# Reads: its arguments only.
# Sets: nothing.

# version_cmp A B: prints `<`, `=` or `>`.
version_cmp() {
    awk -v a="$1" -v b="$2" '
        function run(s) {
            if (match(s, /^[0-9]+/)) return substr(s, 1, RLENGTH)
            match(s, /^[^0-9]+/)
            return substr(s, 1, RLENGTH)
        }
        # Strings throughout ("" concatenation): awk would compare digit
        # strings as floating-point numbers and lose long ones.
        function cmp_text(x, y) { x = x ""; y = y ""; return x < y ? -1 : (x > y ? 1 : 0) }
        function cmp_run(x, y,    xn, yn) {
            xn = x ~ /^[0-9]/; yn = y ~ /^[0-9]/
            if (xn && yn) {
                sub(/^0+/, "", x); sub(/^0+/, "", y)
                if (length(x) != length(y)) return length(x) < length(y) ? -1 : 1
                return cmp_text(x, y)
            }
            if (xn) return 1
            if (yn) return -1
            return cmp_text(x, y)
        }
        function cmp_segment(x, y,    rx, ry, c) {
            while (1) {
                if (x == "" && y == "") return 0
                if (x == "") return -1
                if (y == "") return 1
                rx = run(x); ry = run(y)
                c = cmp_run(rx, ry)
                if (c) return c
                x = substr(x, length(rx) + 1); y = substr(y, length(ry) + 1)
            }
        }
        function cmp_dotted(x, y,    px, py, nx, ny, n, i, c) {
            nx = split(x, px, "."); if (nx == 0) { nx = 1; px[1] = "" }
            ny = split(y, py, "."); if (ny == 0) { ny = 1; py[1] = "" }
            n = nx > ny ? nx : ny
            for (i = 1; i <= n; i++) {
                c = cmp_segment(i <= nx ? px[i] "" : "0", i <= ny ? py[i] "" : "0")
                if (c) return c
            }
            return 0
        }
        function cmp_version(x, y,    ix, iy, c) {
            ix = index(x, "-"); iy = index(y, "-")
            c = cmp_dotted(ix ? substr(x, 1, ix - 1) : x, iy ? substr(y, 1, iy - 1) : y)
            if (c) return c
            if (ix && !iy) return -1
            if (!ix && iy) return 1
            if (ix && iy) { c = cmp_dotted(substr(x, ix + 1), substr(y, iy + 1)); if (c) return c }
            return cmp_text(x, y)
        }
        BEGIN { c = cmp_version(a, b); print c < 0 ? "<" : (c > 0 ? ">" : "=") }
    '
}
