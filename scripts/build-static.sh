#!/usr/bin/env bash
# The fully static musl build of migrate-init: bin/static/migrate-init.
#
#   bash scripts/build-static.sh        what `make static` runs: builds (or
#                                       reuses) the prefix, makes the binary,
#                                       checks it and reports its size
#   bash scripts/build-static.sh deps   only builds (or reuses) the prefix;
#                                       prints its path on stdout
#
# The prefix holds OpenSSL, libbson/libmongoc and libyaml built as static
# libraries with musl-gcc from Debian's source packages (apt-get source, so
# Debian's patches, security fixes included, are applied), at the versions
# pinned in scripts/versions.sh. It lives outside the repository, in
# $STATIC_PREFIX (under $MI_CACHE), keyed by those versions and by
# STATIC_BUILD_REV: the first build takes a few minutes (about 2 on 2 idle
# cores, OpenSSL half of it), later ones reuse it. A prefix is used only once .complete is in it;
# a half-built one is deleted and built again. Build output goes to
# $STATIC_PREFIX.log. Nothing is downloaded except through apt.
#
# ARCH=arm64 (`make static ARCH=arm64`) cross-compiles the same for aarch64:
# bin/static/arm64/migrate-init, from a prefix of its own ($MI_CACHE/
# static-arm64-..., keyed by the same versions plus musl's) built with
# Debian's cross compiler (gcc-aarch64-linux-gnu) and a musl for aarch64
# that Debian does not package: compiled first, from Debian's musl source
# package (the version the host's musl-dev has), into that prefix. ARCH
# unset, empty or the host's (amd64/x86_64) is the native build, unchanged.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source=scripts/versions.sh
. "$here/versions.sh"

JOBS=2 # 2 cores, shared with whoever else is running tests on the machine

# The target. Native: musl-gcc (Debian's musl-tools), the prefix, binary and
# link map of before. Cross: everything keyed by the architecture, and the
# Makefile told through the environment (STATIC_ARCH, STATIC_CC, STATIC_STRIP).
HOST_ARCH=$(dpkg --print-architecture)
case ${ARCH:-} in
"" | "$HOST_ARCH" | x86_64) ARCH=$HOST_ARCH ;;
arm64 | aarch64) ARCH=arm64 ;;
*)
	echo "static: error: ARCH=$ARCH: only $HOST_ARCH (the host) and arm64 are supported" >&2
	exit 2
	;;
esac
if [ "$ARCH" = "$HOST_ARCH" ]; then
	CROSS=
	P=$STATIC_PREFIX
	LIB_CC=musl-gcc
	OSSL_TARGET=linux-$(uname -m)
	BIN=$root/bin/static/migrate-init
	MAP=$root/build/static/migrate-init.map
	TOOL_PREFIX=
else
	[ "$HOST_ARCH" = amd64 ] || {
		echo "static: error: cross builds are set up for an amd64 host, not $HOST_ARCH" >&2
		exit 2
	}
	CROSS=aarch64-linux-gnu # Debian's cross toolchain triplet
	P=$STATIC_PREFIX_ARM64
	LIB_CC=$P/musl/bin/musl-gcc # the wrapper musl's own build installs
	OSSL_TARGET=linux-aarch64
	BIN=$root/bin/static/arm64/migrate-init
	MAP=$root/build/static-arm64/migrate-init.map
	TOOL_PREFIX=$CROSS-
	export STATIC_ARCH=arm64 STATIC_CC=$LIB_CC STATIC_STRIP=${TOOL_PREFIX}strip
fi
LOG=$P.log

# The musl linked in: the one musl-gcc belongs to (Debian's musl-dev), or
# for a cross build the one built from the pinned source package.
musl_version() {
	if [ -z "$CROSS" ]; then
		dpkg-query -W -f='${Version}' musl-dev
	else
		echo "$STATIC_MUSL_VERSION"
	fi
}

say() { printf 'static: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}
# Runs a build step with its output appended to $LOG; on failure shows the
# end of the log.
step() { # description command...
	local what=$1
	shift
	say "$what"
	printf '\n==== %s: %s\n' "$(date -u +%FT%TZ)" "$what" >>"$LOG"
	if ! "$@" >>"$LOG" 2>&1; then
		tail -n 40 "$LOG" >&2
		die "$what failed (whole log: $LOG)"
	fi
}

# Build tools, from Debian's packages; only what is missing is installed.
ensure_tools() {
	local pkgs=(musl-tools gcc make cmake perl pkg-config dpkg-dev xz-utils
		linux-libc-dev binutils file) missing=() p
	# Cross: the compiler, its binutils and kernel headers, and qemu to run
	# the result (the check below, the tests).
	[ -z "$CROSS" ] || pkgs+=(gcc-$CROSS binutils-$CROSS linux-libc-dev-$ARCH-cross qemu-user-static)
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		say "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

# apt-get source needs deb-src entries. We add our own file with the same
# archives as the binary entries (deb822 debian.sources, else the one-line
# sources.list), and run apt-get update only when a pinned version is not
# yet known to apt.
SRC_LIST_DIR=/etc/apt/sources.list.d
src_known() { # package version
	local versions # (not piped into grep -q: with pipefail, SIGPIPE would fail it)
	versions=$(apt-cache showsrc --only-source "$1" 2>/dev/null | sed -n 's/^Version: //p')
	grep -qxF -- "$2" <<<"$versions"
}
all_src_known() {
	src_known openssl "$STATIC_OPENSSL_VERSION" &&
		src_known mongo-c-driver "$STATIC_MONGOC_VERSION" &&
		src_known libyaml "$STATIC_YAML_VERSION" &&
		{ [ -z "$CROSS" ] || src_known musl "$STATIC_MUSL_VERSION"; }
}
ensure_deb_src() {
	all_src_known && return 0
	if [ ! -e "$SRC_LIST_DIR/migrate-init-src.sources" ] && [ ! -e "$SRC_LIST_DIR/migrate-init-src.list" ]; then
		if [ -f "$SRC_LIST_DIR/debian.sources" ]; then
			say "adding $SRC_LIST_DIR/migrate-init-src.sources (deb-src)"
			sed 's/^Types:.*/Types: deb-src/' "$SRC_LIST_DIR/debian.sources" >"$SRC_LIST_DIR/migrate-init-src.sources"
		elif grep -qs '^deb ' /etc/apt/sources.list; then
			say "adding $SRC_LIST_DIR/migrate-init-src.list (deb-src)"
			sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >"$SRC_LIST_DIR/migrate-init-src.list"
		else
			die "no Debian apt sources found to derive deb-src entries from"
		fi
	fi
	step "apt-get update (deb-src)" apt-get update
	local pkg ver pkgs=(openssl:$STATIC_OPENSSL_VERSION mongo-c-driver:$STATIC_MONGOC_VERSION libyaml:$STATIC_YAML_VERSION)
	[ -z "$CROSS" ] || pkgs+=(musl:$STATIC_MUSL_VERSION)
	for pkg in "${pkgs[@]}"; do
		ver=${pkg#*:}
		pkg=${pkg%%:*}
		src_known "$pkg" "$ver" && continue
		say "source package $pkg $ver is not in the archive; it has:"
		apt-cache showsrc --only-source "$pkg" | sed -n 's/^Version: /  /p' >&2
		die "update the pinned version in scripts/versions.sh"
	done
}

# OpenSSL, as small as a TLS 1.2/1.3 client plus SCRAM (HMAC, SHA-1/256,
# PBKDF2) and libmongoc's OCSP checks allow: no shared libraries, engines,
# loadable modules or dlopen (a static binary cannot load any), no legacy
# provider, no tests, and none of the ciphers, digests and protocols that TLS
# 1.2/1.3 clients do not use (each one left in is linked in: the default
# provider refers to all its algorithms). Kept: RSA, EC (prime curves),
# X25519/Ed25519, DH, AES (GCM, CCM, CBC), ChaCha20-Poly1305, SHA-1/2/3,
# MD5 (SCRAM-SHA-1 hashes the password with it), 3DES (old encrypted PEM
# keys), PSK (TLS 1.3 resumption), OCSP.
# Only build_libs and install_dev: the openssl CLI and the docs are not built
# (OpenSSL 3.0 has no no-docs/no-apps options; these targets skip them).
#
# --openssldir=/etc/ssl is compiled in as OPENSSLDIR: the default CA file is
# /etc/ssl/cert.pem and the default hashed CA directory /etc/ssl/certs (what
# libmongoc uses, via SSL_CTX_set_default_verify_paths, when the URL has no
# tlsCAFile), and the config file /etc/ssl/openssl.cnf (optional). Debian and
# Alpine images have those paths; a scratch image must ship the CA bundle as
# /etc/ssl/cert.pem (e.g. Debian's /etc/ssl/certs/ca-certificates.crt copied
# there), or set SSL_CERT_FILE, or use tlsCAFile in the URL.
OPENSSL_CONFIG=(
	no-shared no-module no-dso no-engine no-tests no-legacy no-async no-comp
	no-ssl3 no-dtls no-srtp no-sctp no-srp no-ct no-cms no-cmp no-ts no-ocb
	no-nextprotoneg no-weak-ssl-ciphers no-ui-console no-ec2m
	no-idea no-camellia no-seed no-bf no-cast no-rc2 no-rc4 no-rc5 no-md4
	no-mdc2 no-rmd160 no-whirlpool no-aria no-sm2 no-sm3 no-sm4 no-gost
	no-siphash no-scrypt
	no-tls1 no-tls1_1 no-dsa no-blake2 no-filenames no-asm
	no-dh no-chacha no-poly1305 no-rfc3779
)

# libmongoc/libbson: static libraries (CMake builds the shared ones too; they
# are deleted after install), with TLS and SCRAM through OpenSSL and
# mongodb+srv through the C library's resolver; every other optional feature
# off, so that nothing else is needed or linked:
#   - no snappy/zlib/zstd wire compression;
#   - no ICU: SCRAM-SHA-256 cannot SASLprep the password, so a password
#     with any byte outside printable ASCII (0x20-0x7e) fails with "SCRAM
#     Failure: ICU required to SASLPrep password" (also when SCRAM-SHA-256 is
#     only negotiated, as it is by default with MongoDB >= 4.0). SCRAM-SHA-1
#     does not SASLprep (it hashes user:mongo:password with MD5), so such a
#     password still works with authMechanism=SCRAM-SHA-1 if the user has
#     SCRAM-SHA-1 credentials. ASCII passwords work with both;
#   - no SASL (Cyrus) and so no GSSAPI/Kerberos; SCRAM and PLAIN are built in;
#   - no client-side field level encryption (libmongocrypt);
#   - no MONGODB-AWS authentication (it would need no extra library, only the
#     bundled kms-message, but we have no use for it);
#   - no shared-memory performance counters.
# libbson's CMake looks for librt with find_library (for clock_gettime), and
# would find glibc's /usr/lib/x86_64-linux-gnu/librt.a: we give it musl's
# (an empty stub: musl has clock_gettime in libc.a).
#
# mongodb+srv and musl: the driver's CMake (build/cmake/FindResSearch.cmake)
# prefers res_nsearch (the thread-safe glibc/BSD API, then res_nclose or
# res_ndestroy), else res_search; either way it links -lresolv and reads the
# answers with ns_initparse/ns_parserr/dn_expand. musl (1.2.3 here) has no
# res_nsearch/res_ninit/res_nclose, but has res_search, ns_initparse,
# ns_parserr and dn_expand in libc.a, and ships an empty libresolv.a for
# -lresolv. So the check finds res_search and the driver uses it, unmodified:
# no patch is needed. musl's res_search is its res_query: stateless (it reads
# /etc/resolv.conf on each call), hence thread-safe, but it does not apply
# resolv.conf's search domains (give the SRV name as an FQDN), and musl before
# 1.2.4 asks over UDP only, with no TCP retry of a truncated (> 512 bytes)
# answer. ENABLE_SRV=ON makes the configure step fail rather than silently
# build without SRV; the result is checked after the configure step.
MONGOC_CONFIG=(
	-DENABLE_SSL=OPENSSL -DENABLE_SRV=ON -DENABLE_SASL=OFF -DENABLE_ICU=OFF
	-DENABLE_SNAPPY=OFF -DENABLE_ZLIB=OFF -DENABLE_ZSTD=OFF
	-DENABLE_CLIENT_SIDE_ENCRYPTION=OFF -DENABLE_MONGODB_AWS_AUTH=OFF
	-DENABLE_SHM_COUNTERS=OFF -DENABLE_STATIC=ON -DENABLE_TESTS=OFF
	-DENABLE_EXAMPLES=OFF -DENABLE_MAN_PAGES=OFF -DENABLE_HTML_DOCS=OFF
	-DENABLE_UNINSTALL=OFF
)

# Flags for all three libraries: -fPIC because CMake also links the shared
# libmongoc against the static OpenSSL; sections per function and datum so
# that the final link (--gc-sections) drops what is not used.
LIB_CFLAGS="-Os -fPIC -ffunction-sections -fdata-sections"
# aarch64: inline atomics. gcc 12 otherwise calls libgcc's outline helpers,
# whose CPU check needs __getauxval, which glibc exports and musl's libc.so
# does not: the shared libmongoc and mongoc-stat that CMake links on the way
# would fail (the static link of our binary would not; libc.a has it). The
# inline form is the ARMv8.0 one, for every arm64 CPU.
[ -z "$CROSS" ] || LIB_CFLAGS+=" -mno-outline-atomics"

# Cross only: musl for aarch64, from Debian's source package (its patches
# applied) at the version of the host's musl-dev, compiled with Debian's
# cross gcc into $P/musl, with the musl-gcc wrapper (and its specs file)
# that musl's own build generates for that compiler, so that
# $P/musl/bin/musl-gcc is to aarch64 what Debian's musl-gcc is to the host.
# Shared libc too, as Debian's musl-dev has: CMake also links the shared
# libmongoc (deleted afterwards), which fails against libc.a alone.
build_musl() { # musl source directory
	local src=$1
	step "musl ${STATIC_MUSL_VERSION} for $CROSS: configure" \
		bash -c 'cd "$1" && ./configure --target="$2" CROSS_COMPILE="$2-" CC="$2-gcc" \
			--prefix="$3" --syslibdir="$3/lib" --enable-wrapper=gcc' \
		_ "$src" "$CROSS" "$P/musl"
	step "musl: build" make -C "$src" -j"$JOBS"
	step "musl: install" make -C "$src" install
	[ -x "$LIB_CC" ] || die "musl's build installed no $LIB_CC"
}

# OpenSSL, cross: the cross ar and ranlib (its Configure takes CC from musl-gcc).
OSSL_CROSS=()
[ -z "$CROSS" ] || OSSL_CROSS=(AR="$CROSS-ar" RANLIB="$CROSS-ranlib")
# CMake, cross: the target system, the cross binutils, qemu for any check
# that runs what it compiled, and libraries and headers looked up in the
# prefix only (the configure checks below catch a glibc one anyway).
CMAKE_CROSS=()
[ -z "$CROSS" ] || CMAKE_CROSS=(
	-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64
	-DCMAKE_AR="/usr/bin/$CROSS-ar" -DCMAKE_RANLIB="/usr/bin/$CROSS-ranlib"
	-DCMAKE_CROSSCOMPILING_EMULATOR=/usr/bin/qemu-aarch64-static
	"-DCMAKE_FIND_ROOT_PATH=$P;$P/musl" -DCMAKE_FIND_ROOT_PATH_MODE_PROGRAM=NEVER
	-DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY -DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY
	-DCMAKE_FIND_ROOT_PATH_MODE_PACKAGE=ONLY
)

build_prefix() {
	local work=$1
	# The inner makes are ours, not the caller's: no jobserver, and no
	# variables from `make static` (ARCH=arm64 would override musl's own ARCH).
	unset MAKEFLAGS MFLAGS MAKELEVEL
	export -n ARCH
	rm -rf "$P"
	mkdir -p "$P"

	local srcs=("openssl=$STATIC_OPENSSL_VERSION" "mongo-c-driver=$STATIC_MONGOC_VERSION" "libyaml=$STATIC_YAML_VERSION")
	[ -z "$CROSS" ] || srcs+=("musl=$STATIC_MUSL_VERSION")
	step "downloading and unpacking the source packages (apt-get source)" \
		bash -c 'cd "$1" && shift && apt-get source -o APT::Sandbox::User=root "$@"' _ "$work" "${srcs[@]}"
	local ossl_src mongoc_src yaml_src
	ossl_src=$(echo "$work"/openssl-"${STATIC_OPENSSL_VERSION%-*}")
	mongoc_src=$(echo "$work"/mongo-c-driver-"${STATIC_MONGOC_VERSION%-*}")
	yaml_src=$(echo "$work"/libyaml-"${STATIC_YAML_VERSION%-*}")
	for d in "$ossl_src" "$mongoc_src" "$yaml_src"; do
		[ -d "$d" ] || die "apt-get source did not unpack $d"
	done
	[ -z "$CROSS" ] || build_musl "$work/musl-${STATIC_MUSL_VERSION%-*}"

	# Kernel headers for musl-gcc. Its specs file passes -nostdinc and puts
	# only musl's own headers (/usr/include/x86_64-linux-musl) on the include
	# path, so the Linux UAPI headers that Debian's linux-libc-dev installs in
	# /usr/include/linux, /usr/include/asm-generic and
	# /usr/include/<multiarch>/asm are not found. OpenSSL needs them: with
	# this configuration crypto/mem_sec.c includes <linux/mman.h> (which
	# includes <asm/mman.h> and <asm-generic/...>) because musl's
	# <sys/syscall.h> defines SYS_mlock2; with engines or KTLS it would also
	# want <linux/if_alg.h>, <linux/tls.h>, <linux/version.h>. We link just
	# those three directories into a private one and add it with -idirafter:
	# searched after musl's headers, so musl's always win, and nothing else of
	# glibc's /usr/include can leak in. The system's musl include directory is
	# left untouched. Cross: the same three from Debian's
	# linux-libc-dev-arm64-cross, in /usr/aarch64-linux-gnu/include.
	local kh=$work/kernel-headers multiarch musl_lib
	mkdir -p "$kh"
	if [ -z "$CROSS" ]; then
		multiarch=$(gcc -dumpmachine)
		musl_lib=/usr/lib/${multiarch%-gnu}-musl
		ln -s /usr/include/linux "$kh/linux"
		ln -s /usr/include/asm-generic "$kh/asm-generic"
		ln -s "/usr/include/$multiarch/asm" "$kh/asm"
	else
		musl_lib=$P/musl/lib
		ln -s "/usr/$CROSS/include/linux" "$kh/linux"
		ln -s "/usr/$CROSS/include/asm-generic" "$kh/asm-generic"
		ln -s "/usr/$CROSS/include/asm" "$kh/asm"
	fi
	[ -e "$kh/linux/mman.h" ] && [ -e "$kh/asm/mman.h" ] ||
		die "kernel headers missing in /usr/include (linux-libc-dev)"

	# Nothing of the build may see Debian's (glibc) libraries through
	# pkg-config.
	export PKG_CONFIG_LIBDIR="$P/lib/pkgconfig" PKG_CONFIG_PATH=

	step "OpenSSL ${STATIC_OPENSSL_VERSION}: configure" \
		bash -c 'cd "$1" && shift && ./Configure "$@"' _ "$ossl_src" \
		"$OSSL_TARGET" CC="$LIB_CC" "${OSSL_CROSS[@]}" --prefix="$P" --libdir=lib --openssldir=/etc/ssl \
		"${OPENSSL_CONFIG[@]}" $LIB_CFLAGS "-idirafter$kh"
	step "OpenSSL: build (the slow part)" make -C "$ossl_src" -j"$JOBS" build_libs
	step "OpenSSL: install" make -C "$ossl_src" install_dev

	step "libyaml ${STATIC_YAML_VERSION}: configure" \
		cmake -S "$yaml_src" -B "$work/yaml-build" -DCMAKE_C_COMPILER="$LIB_CC" "${CMAKE_CROSS[@]}" \
		-DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="$LIB_CFLAGS -DNDEBUG" \
		-DBUILD_SHARED_LIBS=OFF -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX="$P" \
		-DINSTALL_CMAKE_DIR=lib/cmake/yaml
	step "libyaml: build" cmake --build "$work/yaml-build" -j "$JOBS"
	step "libyaml: install" cmake --install "$work/yaml-build"
	# Its CMake build installs no pkg-config file; write the one autotools would.
	cat >"$P/lib/pkgconfig/yaml-0.1.pc" <<EOF
prefix=$P
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: LibYAML
Description: Library to parse and emit YAML
Version: ${STATIC_YAML_VERSION%-*}
Cflags: -I\${includedir} -DYAML_DECLARE_STATIC
Libs: -L\${libdir} -lyaml
EOF

	step "mongo-c-driver ${STATIC_MONGOC_VERSION}: configure" \
		cmake -S "$mongoc_src" -B "$work/mongoc-build" -DCMAKE_C_COMPILER="$LIB_CC" "${CMAKE_CROSS[@]}" \
		-DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="$LIB_CFLAGS -DNDEBUG" \
		-DCMAKE_INSTALL_PREFIX="$P" -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_PREFIX_PATH="$P" \
		-DOPENSSL_ROOT_DIR="$P" -DOPENSSL_USE_STATIC_LIBS=TRUE \
		-DBUILD_VERSION="${STATIC_MONGOC_VERSION%-*}" "${MONGOC_CONFIG[@]}" \
		-DRT_LIBRARY="$musl_lib/librt.a"
	# The configure step must have found our OpenSSL (not Debian's libssl.a),
	# no other library of Debian's (glibc) multiarch directories, and chosen
	# res_search for mongodb+srv.
	local cache=$work/mongoc-build/CMakeCache.txt
	if grep -E '^[^#].*:FILEPATH=.*/[^/]*-linux-gnu/' "$cache" >&2; then
		die "libmongoc's CMake picked the glibc libraries above"
	fi
	grep -q "^OPENSSL_SSL_LIBRARY:FILEPATH=$P/lib/libssl.a$" "$cache" ||
		die "libmongoc's CMake did not pick $P/lib/libssl.a: $(grep '^OPENSSL_SSL_LIBRARY' "$cache")"
	grep -q '^MONGOC_HAVE_RES_SEARCH:INTERNAL=1$' "$cache" ||
		die "libmongoc's CMake found no res_search: mongodb+srv would not work (see $LOG)"
	step "mongo-c-driver: build" cmake --build "$work/mongoc-build" -j "$JOBS"
	step "mongo-c-driver: install" cmake --install "$work/mongoc-build"

	# Static only: without the shared libmongoc/libbson nothing can link
	# them by mistake. Also drop the man pages and docs that came along.
	find "$P/lib" -maxdepth 1 -name '*.so*' -delete
	rm -rf "$P/share/man" "$P/share/doc"
	{
		echo "openssl $STATIC_OPENSSL_VERSION: ${OPENSSL_CONFIG[*]} --openssldir=/etc/ssl"
		echo "mongo-c-driver $STATIC_MONGOC_VERSION: ${MONGOC_CONFIG[*]}"
		echo "libyaml $STATIC_YAML_VERSION"
		if [ -z "$CROSS" ]; then
			echo "CFLAGS: $LIB_CFLAGS; compiler: $(musl-gcc --version | head -n1), musl $(dpkg-query -W -f='${Version}' musl-dev)"
		else
			echo "CFLAGS: $LIB_CFLAGS; compiler: musl-gcc wrapper of $($CROSS-gcc --version | head -n1), musl $STATIC_MUSL_VERSION (Debian source, built for $CROSS)"
		fi
	} >"$P/BUILDINFO"
	touch "$P/.complete"
}

ensure_prefix() {
	ensure_tools # also what the binary's build and checks need: a few ms when present
	[ -f "$P/.complete" ] && return 0
	mkdir -p "$MI_CACHE"
	# One build of a prefix at a time (another `make static`, e.g. CI, may be
	# running). Per prefix: scripts/test.sh builds the arm64 one in the
	# background while the suites build the host's.
	exec 9>"$P.lock"
	flock -n 9 || {
		say "waiting for another build of this prefix ($P.lock)"
		flock 9
	}
	if [ -f "$P/.complete" ]; then
		exec 9>&-
		return 0
	fi
	ensure_deb_src
	: >"$LOG"
	local start
	WORK=$(mktemp -d "$MI_CACHE/static-build.XXXXXX")
	trap 'rm -rf "$WORK"' EXIT
	start=$(date +%s)
	say "building the static prefix $P (first time only: a few minutes; log: $LOG)"
	(build_prefix "$WORK") # a subshell: its exports stay there
	rm -rf "$WORK"
	trap - EXIT
	exec 9>&-
	say "prefix built in $(($(date +%s) - start)) s"
}

# The binary: compiled and linked by the Makefile's static rules, with
# musl-gcc, the Makefile's warnings, -static, stripped.
build_binary() {
	local jobs=()
	[ -n "${MAKELEVEL:-}" ] || jobs=(-j"$JOBS") # under make: its jobserver
	# What -version reports as linked in (src/version.h): the pinned Debian
	# source versions, and the musl linked in.
	local components
	components="openssl=$STATIC_OPENSSL_VERSION mongo-c-driver=$STATIC_MONGOC_VERSION"
	components+=" libyaml=$STATIC_YAML_VERSION musl=$(musl_version)"
	"${MAKE:-make}" -C "$root" --no-print-directory "${jobs[@]}" "${BIN#"$root"/}" \
		STATIC_PREFIX="$P" STATIC_COMPONENTS="$components"
}

# Debian's copyright file (the licence texts) of each source package linked
# in, at the pinned versions, into $P/share/licenses/SOURCE/copyright: from
# the debian/ tarball that apt-get source downloads (no unpacking of the
# sources; done once per prefix, and for a prefix built before this step).
ensure_licences() {
	local L=$P/share/licenses musl_v work pkg
	[ -f "$L/.complete" ] && return 0
	ensure_deb_src
	musl_v=$(musl_version)
	work=$(mktemp -d)
	step "downloading the source packages' copyright files" \
		bash -c 'cd "$1" && apt-get source --download-only -o APT::Sandbox::User=root \
			"openssl=$2" "mongo-c-driver=$3" "libyaml=$4" "musl=$5"' \
		_ "$work" "$STATIC_OPENSSL_VERSION" "$STATIC_MONGOC_VERSION" "$STATIC_YAML_VERSION" "$musl_v"
	for pkg in openssl mongo-c-driver libyaml musl; do
		mkdir -p "$L/$pkg"
		tar -xOf "$(ls "$work/${pkg}_"*.debian.tar.*)" debian/copyright >"$L/$pkg/copyright" ||
			die "no debian/copyright in $pkg's source package"
	done
	rm -rf "$work"
	touch "$L/.complete"
}

# The SBOM (SPDX 2.3) and the licence texts, beside the binary.
write_sbom() {
	ensure_licences
	STATIC_OPENSSL_VERSION=$STATIC_OPENSSL_VERSION STATIC_MONGOC_VERSION=$STATIC_MONGOC_VERSION \
		STATIC_YAML_VERSION=$STATIC_YAML_VERSION STATIC_MUSL_VERSION=$(musl_version) STATIC_PREFIX=$P \
		/usr/bin/python3 "$here/sbom.py" "$BIN" "$ARCH" >&2
}

check_and_report() {
	local bin=$BIN desc bytes
	desc=$(file -b "$bin")
	case $desc in
	*"statically linked"* | *"static-pie linked"*) ;;
	*) die "$bin is not statically linked: $desc" ;;
	esac
	if [ -n "$CROSS" ]; then
		case $desc in
		*"ARM aarch64"*) ;;
		*) die "$bin is not an aarch64 executable: $desc" ;;
		esac
	fi
	if readelf -l "$bin" | grep -q INTERP; then
		die "$bin has a program interpreter: not fully static"
	fi
	# Everything linked in is ours or musl's (plus gcc's own libgcc and crt
	# files): no glibc archive.
	local map=$MAP
	if grep '^LOAD .*-linux-gnu/' "$map" | grep -Ev '^LOAD /usr/lib/gcc(-cross)?/' >&2; then
		die "glibc files were linked into $bin (above)"
	fi
	if [ -z "$CROSS" ]; then
		"$bin" -version >/dev/null || die "$bin -version failed"
	else
		qemu-aarch64-static "$bin" -version >/dev/null || die "qemu-aarch64-static $bin -version failed"
	fi
	bytes=$(stat -c %s "$bin")
	say "${bin#"$root"/}: $desc"
	say "size: $bytes bytes = $(awk -v b="$bytes" 'BEGIN { printf "%.2f MB (%.2f MiB)", b / 1e6, b / 1048576 }')"
	"${TOOL_PREFIX}size" "$bin" | sed 's/^/static:   /' >&2
	# What the bytes are: sum the input sections that went into the binary,
	# from the link map, by library (our own objects together).
	if [ -f "$map" ]; then
		say "code and data by origin (from the link map):"
		awk '
			function hex(s,   i, n) {
				s = tolower(s); sub(/^0x/, "", s); n = 0
				for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
				return n
			}
			/^Linker script and memory map/ { on = 1; next }
			!on { next }
			# An input section: name, address, size, file (the name may be alone on
			# the line before).
			/^ \.[^ ]+$/ { pending = $1; next }
			{
				if (pending != "" && $1 ~ /^0x/ && NF == 3) { sec = pending; addr = $1; sz = $2; f = $3 }
				else if ($1 ~ /^\./ && $2 ~ /^0x/ && NF == 4) { sec = $1; addr = $2; sz = $3; f = $4 }
				else { pending = ""; next }
				pending = ""
				if (sec ~ /^\.(debug|comment|note|bss|tbss)/ || sec ~ /^\.gnu\.warning/) next
				n = hex(sz); if (n == 0) next
				sub(/\(.*$/, "", f)
				if (f ~ /build\/static[^\/]*\//) f = "migrate-init objects"
				else { sub(/^.*\//, "", f) }
				tot[f] += n; all += n
			}
			END {
				for (f in tot) printf "%10d  %5.1f%%  %s\n", tot[f], 100 * tot[f] / all, f
			}' "$map" | sort -rn | head -n 8 | sed 's/^/static:   /' >&2
	fi
	echo "$bin"
}

case ${1:-all} in
fetch)
	# Only what touches apt (toolchain, deb-src entries), so that a build
	# started in the background afterwards never contends for apt's lock.
	ensure_tools
	ensure_deb_src
	;;
deps)
	ensure_prefix
	echo "$P"
	;;
all)
	ensure_prefix
	build_binary
	check_and_report
	write_sbom
	;;
*)
	echo "usage: $0 [fetch|deps]" >&2
	exit 2
	;;
esac
