/* confdoc.h - documentation generated from the key table (conf.h).
 *
 * The table of conf.c is the one source of every key's name, type, default
 * and meaning; these print it in other forms: outpost.conf(5) as roff,
 * built at build time by `outpost config defaults --man`, and the list of
 * keys a reload applies (docs/install.md, "Reload", holds that list and
 * tests/unit/conf_test.c checks it).
 */
#ifndef OUTPOST_CONF_CONFDOC_H
#define OUTPOST_CONF_CONFDOC_H

#include <stdio.h>

/* The manual page outpost.conf(5), in man(7) macros, plain ASCII (other
 * characters as groff's \[uXXXX]), naming the build's system file
 * (conf_system_path) in SYNOPSIS and FILES. */
void confdoc_print_man(FILE *out);

/* One "section.key" line for every key whose change a reload applies. */
void confdoc_print_reloadable(FILE *out);

#endif
