#!/usr/bin/env bash
# make dist: carry airlock itself into an air-gapped network (docs/install-offline.md).
#   1. stage /usr/bin/airlock, the systemd unit, man pages, /etc/default/airlock and the docs,
#      write DEBIAN/{control,conffiles,md5sums,postinst,prerm,postrm} and build the .deb with
#      `dpkg-deb --build --root-owner-group` (no debian/ directory, no dpkg-buildpackage);
#   2. Depends: each NEEDED soname of the binary -> the file ldd resolves -> `dpkg -S` -> the
#      package, versioned from that package's shlibs file (as dpkg-shlibdeps falls back to);
#   3. `apt-get download` the dependency closure of those Depends minus what a minimal Debian 12
#      system (debootstrap --variant=minbase) already has -- the rule is spelt out at base_set;
#   4. write install.sh (one `dpkg -i` in dependency order) and ORDER into the payload, and
#      `airlock pack` it into OUT/airlock-VERSION-bundle, then check the bundle three ways.
# Environment: KEY   minisign secret key to sign with (default: a throwaway key, said loudly)
#              PUB   its public key, to check the bundle after packing (optional)
#              OUT   output directory (default build/dist)
#              AIRLOCK  the binary to ship (default ./airlock)
#              CLOSURE=full  carry the whole closure, base packages included (clean side older
#                            than the connected side's point release)
set -euo pipefail
cd "$(dirname "$0")/.."
A=${AIRLOCK:-./airlock}
OUT=${OUT:-build/dist}
[ -x "$A" ] || { echo "dist: $A not built (run make airlock)" >&2; exit 2; }
for t in dpkg-deb dpkg apt-cache apt-get ldd gzip; do
  command -v "$t" >/dev/null || { echo "dist: $t missing" >&2; exit 2; }
done
VERSION=$("$A" --version | awk '{print $2}')
ARCH=$(dpkg --print-architecture)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
DEB=airlock_${VERSION}_${ARCH}.deb
BUNDLE=$OUT/airlock-$VERSION-bundle
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUNDLE=$OUT/airlock-$VERSION-bundle
work=$OUT/work
rm -rf "$work"
mkdir -p "$work"
say() { printf 'dist: %s\n' "$*" >&2; }

# --- signing key ---------------------------------------------------------------------------
if [ -z "${KEY:-}" ]; then
  KEY=$OUT/throwaway.key PUB=$OUT/throwaway.pub
  "$A" keygen -W -f -p "$PUB" -s "$KEY" -c "airlock dist throwaway key" >/dev/null
  cat >&2 <<EOF
dist: ################################################################################
dist: KEY is not set: the bundle is signed with a THROWAWAY key made just now:
dist:   $KEY  (secret, unencrypted)   $PUB  (public)
dist: Nobody on the clean side can tell this key from an attacker's. For a real transfer:
dist:   KEY=release.key PUB=release.pub make dist
dist: ################################################################################
EOF
fi
[ -r "$KEY" ] || { say "cannot read KEY=$KEY"; exit 2; }

# --- 1. staged tree ------------------------------------------------------------------------
st=$work/stage
install -d "$st/DEBIAN" "$st/usr/bin" "$st/lib/systemd/system" "$st/usr/share/man/man1" \
  "$st/etc/default" "$st/usr/share/doc/airlock"
install -m 0755 "$A" "$st/usr/bin/airlock"
strip --strip-unneeded "$st/usr/bin/airlock" 2>/dev/null || true
install -m 0644 deploy/systemd/airlock.service "$st/lib/systemd/system/airlock.service"
install -m 0644 deploy/airlock.conf "$st/etc/default/airlock"
AIRLOCK=$A scripts/man.sh "$work/man" >/dev/null
for m in "$work"/man/*.1; do gzip -9nc "$m" > "$st/usr/share/man/man1/${m##*/}.gz"; done
install -m 0644 README.md "$st/usr/share/doc/airlock/README.md"
install -m 0644 docs/install-offline.md "$st/usr/share/doc/airlock/install-offline.md"
cat > "$st/usr/share/doc/airlock/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: airlock
Comment: The binary is built from the airlock source tree and links dynamically to the
 system's OpenSSL, jansson, libarchive, libmicrohttpd and PCRE2, whose copyright files are
 installed with their own packages.

Files: *
Copyright: the airlock authors
License: see the airlock source tree
Comment: usr/bin/airlock embeds the default model stories260K (weights and tokenizer),
 Copyright 2023 Andrej Karpathy, trained on TinyStories and published with llama2.c under
 the MIT licence below.

License: MIT
EOF
sed '1,/^$/d; s/^$/./; s/^/ /' models/stories260K/LICENSE >> "$st/usr/share/doc/airlock/copyright"

# --- 2. Depends from the binary's NEEDED sonames --------------------------------------------
deps=()
for so in $(objdump -p "$A" | awk '$1 == "NEEDED" {print $2}'); do
  path=$(ldd "$A" | awk -v s="$so" '$1 == s {print $3}')
  [ -n "$path" ] || { say "ldd does not resolve $so"; exit 3; }
  pkg=
  for p in "$path" "$(readlink -f "$path")" "/usr$path" "${path#/usr}"; do
    pkg=$(dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$pkg" ] && break
  done
  [ -n "$pkg" ] || { say "no package owns $path ($so)"; exit 3; }
  # shlibs line "libcrypto 3 libssl3 (>= 3.0.0)": name and version are the soname split at .so.
  name=${so%%.so*} sover=${so#*.so.}
  shl=$({ cat /var/lib/dpkg/info/"$pkg".shlibs /var/lib/dpkg/info/"$pkg:$ARCH".shlibs 2>/dev/null || :; } |
        awk -v n="$name" -v v="$sover" '$1 == n && $2 == v {$1 = $2 = ""; sub(/^ +/, ""); print; exit}')
  if [ -z "$shl" ]; then
    ver=$(dpkg-query -W -f='${Version}' "$pkg:$ARCH" 2>/dev/null || dpkg-query -W -f='${Version}' "$pkg")
    shl="$pkg (>= ${ver%%-*})"
  fi
  deps+=("$shl")
done
DEPENDS=$(printf '%s\n' "${deps[@]}" | sort -u | paste -sd, | sed 's/,/, /g')
dep_pkgs=$(printf '%s\n' "${deps[@]}" | awk '{print $1}' | sort -u)
say "Depends: $DEPENDS"

cat > "$st/DEBIAN/control" <<EOF
Package: airlock
Version: $VERSION
Architecture: $ARCH
Maintainer: airlock maintainers <airlock@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$st" | cut -f1)
Depends: $DEPENDS
Section: utils
Priority: optional
Description: carry LLMs into air-gapped networks, verify and serve them there
 One auditable C program: signed transfer bundles (airlock pack / verify, in sha256sum and
 minisign formats), a CPU inference engine for GGUF models (airlock run / chat / bench),
 and an OpenAI-compatible server with a built-in web chat (airlock serve, systemd unit
 airlock.service, configured in /etc/default/airlock; not enabled on install).
EOF
echo /etc/default/airlock > "$st/DEBIAN/conffiles"
cat > "$st/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
EOF
cat > "$st/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop airlock.service >/dev/null 2>&1 || true
fi
exit 0
EOF
cat > "$st/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
EOF
chmod 0755 "$st/DEBIAN/postinst" "$st/DEBIAN/prerm" "$st/DEBIAN/postrm"
(cd "$st" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
  xargs -0 md5sum > DEBIAN/md5sums)
find "$st" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
payload=$work/payload
mkdir -p "$payload/debs"
dpkg-deb -Zxz --root-owner-group --build "$st" "$payload/debs/$DEB" >/dev/null
say "built $DEB ($(stat -c %s "$payload/debs/$DEB") bytes)"

# --- 3. dependency closure minus a minimal Debian 12 system --------------------------------
# closure ROOTS...: every package apt would install for ROOTS, following Depends and
# Pre-Depends (never Recommends/Suggests); of an or-group the first alternative is taken, and
# a virtual package resolves to its first provider -- as apt and debootstrap choose.
closure() {
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "$@" | awk -v roots="$*" '
    /^[^ ]/        { cur = $1; sub(/:.*/, "", cur); alt = 0; next }
    /^ [ |][A-Za-z]+: / {
      kind = $1; sub(/^\|/, "", kind)
      if (kind != "Depends:" && kind != "PreDepends:") { skip = 1; next }
      skip = 0; d = $2; sub(/:.*/, "", d)
      if (!alt) { ng[cur]++; chosen[cur, ng[cur]] = "" }   # a new group starts
      if (chosen[cur, ng[cur]] == "") {
        if (d ~ /^</) want_provider = 1; else { chosen[cur, ng[cur]] = d; want_provider = 0 }
      } else want_provider = 0
      alt = ($0 ~ /^ \|/); next }
    /^    [^ ]/    { if (!skip && want_provider && chosen[cur, ng[cur]] == "") {
                       p = $1; sub(/:.*/, "", p); chosen[cur, ng[cur]] = p }
                     next }
    END {
      n = split(roots, q, " "); for (i = 1; i <= n; i++) seen[q[i]] = 1
      for (h = 1; h <= n; h++) {
        p = q[h]
        for (g = 1; g <= ng[p]; g++) { d = chosen[p, g]
          if (d != "" && !(d in seen)) { seen[d] = 1; q[++n] = d } }
      }
      for (p in seen) print p
    }' | sort -u
}
# base_set: what every Debian 12 system has. The rule: packages marked Essential: yes or
# Priority: required, plus apt, and their closure -- exactly what `debootstrap --variant=minbase`
# installs. Priority: important is NOT assumed (minbase and container images lack it), and
# neither is a package's own Priority: bookworm marks libraries such as libc6 "optional" even
# though every system has them through the required set.
base_set() {
  apt-cache dumpavail | awk -v RS= '/\nPriority: required|\nEssential: yes/ {
    if (match($0, /^Package: [^\n]+/)) print substr($0, 10, RLENGTH - 9) }' | sort -u > "$work/required"
  mapfile -t req < "$work/required"
  closure "${req[@]}" apt
}
# shellcheck disable=SC2086 # package names, one word each
closure $dep_pkgs > "$work/closure"
if [ "${CLOSURE:-}" = full ]; then
  cp "$work/closure" "$work/carry"
else
  base_set > "$work/base"
  comm -23 "$work/closure" "$work/base" > "$work/carry"
fi
say "closure of Depends: $(wc -l < "$work/closure") packages; carried: $(paste -sd' ' "$work/carry")"
if [ -s "$work/carry" ]; then
  mapfile -t carry < "$work/carry"
  (cd "$payload/debs" && apt-get download -q=2 -o APT::Sandbox::User=root "${carry[@]}") ||
    { say "apt-get download failed (run apt-get update?)"; exit 3; }
fi

# --- 4. install order, install.sh, pack ------------------------------------------------------
# tsort over "dependency dependant" edges among the carried packages gives a valid dpkg order.
(cd "$payload/debs"
 for f in *.deb; do
   p=$(dpkg-deb -f "$f" Package); echo "$p $p"
   dpkg-deb -f "$f" Pre-Depends Depends | sed 's/^[A-Za-z-]*: //' | tr ',' '\n' |
     sed 's/|.*//; s/(.*//; s/:any//; s/ //g' | grep -v '^$' | sed "s/\$/ $p/"
 done) > "$work/edges"
for f in "$payload"/debs/*.deb; do echo "$(dpkg-deb -f "$f" Package) debs/$(basename "$f")"; done |
  sort > "$work/files"
tsort "$work/edges" | awk 'NR == FNR {f[$1] = $2; next} ($1 in f) {print f[$1]}' \
  "$work/files" - > "$payload/ORDER"
cat > "$payload/install.sh" <<'EOF'
#!/bin/sh
# Install airlock and the Debian packages it needs from this bundle, without any repository.
# Run it only after the bundle verified (docs/install-offline.md):
#   airlock verify BUNDLE --trust release.pub --allow-code          (airlock already there)
#   cd BUNDLE && minisign -Vm MANIFEST.sha256 -p release.pub && sha256sum -c MANIFEST.sha256
# then, as root:  sh BUNDLE/payload/install.sh
# ORDER lists the .debs dependencies first; one dpkg run unpacks and configures them all.
set -eu
cd "$(dirname "$0")"
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root" >&2; exit 2; }
set --
while IFS= read -r f; do [ -n "$f" ] && set -- "$@" "$f"; done < ORDER
DEBIAN_FRONTEND=noninteractive dpkg -i "$@"
airlock --version
echo "install.sh: done; configure /etc/default/airlock, then: systemctl enable --now airlock"
EOF
chmod 0755 "$payload/install.sh"
find "$payload" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
rm -rf "$BUNDLE"
"$A" pack "$payload" -o "$BUNDLE" --name airlock --version "$VERSION" --key "$KEY" \
  --source "make dist" -j 2 >/dev/null
if [ -n "${PUB:-}" ]; then
  "$A" verify "$BUNDLE" --trust "$PUB" --allow-code -j 2 >/dev/null
  (cd "$BUNDLE" && sha256sum --quiet -c MANIFEST.sha256)
  if command -v minisign >/dev/null; then minisign -Vqm "$BUNDLE/MANIFEST.sha256" -p "$PUB"; fi
  cp "$PUB" "$OUT/airlock-$VERSION.pub"
  say "bundle verified with $PUB (airlock verify, sha256sum -c, minisign -V)"
fi
cp "$payload/debs/$DEB" "$OUT/$DEB"
# the fingerprint an operator carries separately (paper, phone) for the coreutils-only check
sha256sum "$BUNDLE/MANIFEST.sha256" | cut -d' ' -f1 > "$OUT/airlock-$VERSION.manifest-sha256"
say "MANIFEST.sha256 fingerprint (carry it out of band): $(cat "$OUT/airlock-$VERSION.manifest-sha256")"
rm -rf "$work"
say "bundle: $BUNDLE ($(du -sk "$BUNDLE" | cut -f1) KiB, $(wc -l < "$BUNDLE/payload/ORDER") packages)"
echo "$BUNDLE"
