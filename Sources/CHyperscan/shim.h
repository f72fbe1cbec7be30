#ifndef MCP_PORTAL_CHYPERSCAN_H
#define MCP_PORTAL_CHYPERSCAN_H
#include <hs/hs.h>
#endif
