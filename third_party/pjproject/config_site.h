/*
 * edgecall's compile-time settings for pjproject 2.15.1 (copied to
 * pjlib/include/pj/config_site.h by third_party/build-pjsua2.sh before configure).
 *
 * pjproject fixes several capacities at compile time; a run-time setting above them
 * (uaConfig.maxCalls, medConfig.maxMediaPorts) is silently clamped or fails later.
 * The values below were measured to hold 64 simultaneous calls with media in one
 * process (see third_party/README.md). edgecall reads the effective call limit back
 * at start (telephony/engine.py) and refuses a sip.max_concurrent_calls above it; the
 * config check uses PJSUA_MAX_CALLS below as its ceiling (config/sip.py,
 * PJSUA_MAX_CALLS_BUILT): keep the two equal.
 */

/* Calls per process. The default of 4 is what capped one appliance at 4 calls with the
 * pjsua2-python wheel: pjsua clamps uaConfig.maxCalls to it and answers a further
 * INVITE with 486 before the application sees it. 64 covers the largest branch box
 * with room for refused and transferring calls; each slot costs a few kB. */
#define PJSUA_MAX_CALLS             64

/* Sockets one ioqueue can watch. Each audio call takes two (RTP and RTCP), plus the
 * SIP transports, TCP/TLS connections and the DNS resolver; the default 64 stops at
 * about 30 audio calls. 1024 leaves ample room for 64 calls and is the most the
 * select() ioqueue used on Linux can address (glibc's FD_SETSIZE is 1024). */
#define PJ_IOQUEUE_MAX_HANDLES      1024

/* WAV players and recorders per process (prompts to callers, test recordings). The
 * default 32 is below one per call at 64 calls; 128 allows two of each per call. */
#define PJSUA_MAX_PLAYERS           128
#define PJSUA_MAX_RECORDERS         128
