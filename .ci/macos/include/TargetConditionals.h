/* Stand-in for the macOS SDK header of this name, so that ring's C code can be
 * compiled for aarch64-apple-darwin by clang on Linux for `cargo check` (no
 * SDK here). Only the macros ring's base.h reads: this is macOS on arm64. */
#pragma once
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_SIMULATOR 0
