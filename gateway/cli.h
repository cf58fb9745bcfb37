/* cli.h: `genai-gateway rollup ...` and `genai-gateway maintain ...` (see cli.c). */
#ifndef GW_CLI_H
#define GW_CLI_H

/* argv[1] is the command name ("rollup" or "maintain"). Returns the process exit code. */
int gw_cli_main(int argc, char **argv);

#endif
