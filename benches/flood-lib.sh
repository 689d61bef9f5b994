# Sourced by the flood benchmarks (live.sh, record-flood.sh, xdp-count.sh): the two network
# namespaces joined by a veth, and trafgen's configurations for their floods. Nothing here runs
# on its own; the caller deletes the namespaces (its EXIT trap).

# flood_netns A V VIC: namespace A (the attacker, eth0 at 10.209.0.1) and V (the victim, va at
# VIC), joined by a veth; sets `vmac`, the victim's MAC address, for flood_cfg.
flood_netns() {
  local a=$1 v=$2 vic=$3
  ip netns add "$a"; ip netns add "$v"
  ip -n "$a" link set lo up; ip -n "$v" link set lo up
  ip -n "$v" link add va type veth peer name eth0 netns "$a"
  ip -n "$v" addr add "$vic/24" dev va
  ip -n "$a" addr add 10.209.0.1/24 dev eth0
  ip -n "$v" link set va up; ip -n "$a" link set eth0 up
  vmac=$(ip -n "$v" -o link show va | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
}

# flood_cfg MODE VIC FILE: writes trafgen's configuration for MODE to FILE: TCP SYNs to VIC
# from 198.18.0.0/16 with random source bytes. Modes:
#   many     64k sources (the last two bytes random), to port 80
#   few      8 sources, to port 80
#   million  ~16M sources (the last three bytes random), to port 80
#   scan     8 sources, each SYN to a random port (port scanners)
# Returns 2 for another MODE.
flood_cfg() {
  local src dp=80
  case $1 in
    many) src='sa[2]=drnd(), sa[3]=drnd()' ;;
    few) src='sa[3]=drnd(1, 8)' ;;
    million) src='sa[1]=drnd(), sa[2]=drnd(), sa[3]=drnd()' ;;
    scan) src='sa[3]=drnd(1, 8)'; dp='drnd()' ;;
    *) return 2 ;;
  esac
  printf '{\n  eth(da=%s),\n  ipv4(sa=198.18.0.0, da=%s, %s),\n  tcp(sp=drnd(), dp=%s, syn)\n}\n' \
    "$vmac" "$2" "$src" "$dp" >"$3"
}
