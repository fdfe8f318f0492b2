import test from 'ava'
import { mapAddress, parseSubnet, SubnetMap } from '../src/index.js'

test('twin addresses differ only in the subnet portion (claims 3, 13, 23)', (t) => {
  const map = new SubnetMap({ east: '10.1.0.0/16', west: '10.2.0.0/16' })
  t.is(map.twinAddress('10.1.0.7', 'east', 'west'), '10.2.0.7')
  t.is(map.twinAddress('10.2.3.250', 'west', 'east'), '10.1.3.250')
  t.true(map.areTwins('10.1.0.7', 'east', '10.2.0.7', 'west'))
  t.false(map.areTwins('10.1.0.7', 'east', '10.2.0.8', 'west'), 'host parts differ: not twins')
  t.is(map.twinAddress('10.9.0.7', 'east', 'west'), undefined, 'an address outside its center subnet maps to nothing')
  t.is(map.twinAddress('10.1.0.7', 'east', 'north'), undefined)
  t.is(mapAddress('127.1.0.3', parseSubnet('127.1.0.0/16'), parseSubnet('127.2.0.0/16')), '127.2.0.3')
  t.is(mapAddress('192.168.5.9', parseSubnet('192.168.5.0/24'), parseSubnet('192.168.6.0/24')), '192.168.6.9')
  t.is(mapAddress('10.1.0.7', parseSubnet('10.1.0.0/16'), parseSubnet('10.2.0.0/24')), undefined, 'different prefix lengths have no one-to-one mapping')
  t.throws(() => parseSubnet('10.1.0.0'), { message: /CIDR/ })
  t.throws(() => parseSubnet('300.1.0.0/16'), { message: /CIDR/ })
})
