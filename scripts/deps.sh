# Sourced by scripts/test and scripts/demo: makes sure the Debian packages the
# project needs are there, installing them when we are root and may.
MISLAS_PACKAGES=(meson ninja-build pkg-config gcc g++ clang libclang-rt-14-dev
                 libblis-openmp-dev zlib1g-dev check abigail-tools valgrind dataset-fashion-mnist
                 python3-torch python3-numpy libjpeg62-turbo-dev libpng-dev python3-pil
                 python3-torchvision libopenmpi-dev openmpi-bin man-db groff-base cmake
                 dpkg-dev debhelper lintian libjpeg-dev)

mislas_missing_packages() {
    local missing=() p
    for p in "${MISLAS_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    echo "${missing[@]}"
}

mislas_ensure_packages() {
    local missing
    missing=$(mislas_missing_packages)
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing: $missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq $missing >/dev/null
    else
        echo "missing Debian packages: $missing" >&2
        echo "install them with: sudo apt-get install -y $missing" >&2
        return 1
    fi
}
